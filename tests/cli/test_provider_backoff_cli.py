"""Offline, `carbonshift submit` asks a dead provider once; the next submits (new processes,
sharing only the database) fall back at once and say why, until the back-off has passed."""

from __future__ import annotations

import json

from tests.cli.conftest import CS


def _offline(cs: CS, minutes: float = 5.0) -> None:
    # `.invalid` never resolves (RFC 6761): a failed DNS lookup, reported without retries
    cs.config.write_text(
        'default_zone = "GB"\n'
        f"[intensity]\nproviders = [\"ukgrid\"]\nretry_failed_after_minutes = {minutes}\n"
        '[providers.ukgrid]\nbase_url = "http://carbonshift-offline.invalid"\n'
    )


def _submit(cs: CS) -> dict[str, object]:
    r = cs("submit", "--json", "--duration", "1h", "--deadline", "12h", "--", "true")
    assert r.code == 0, r.err
    return json.loads(r.out)  # type: ignore[no-any-return]


def test_a_failed_provider_is_not_asked_again_by_the_next_submits(cs: CS) -> None:
    _offline(cs)
    first = _submit(cs)
    assert first["fallback"] is True
    assert "ukgrid failed" in str(first["plan_source"]), first["plan_source"]
    for _ in range(2):
        later = _submit(cs)
        source = str(later["plan_source"])
        assert later["fallback"] is True
        assert "ukgrid not asked: it failed for GB at" in source and "next try after" in source, source
        assert "static" in source
    shown = cs("show", str(later["id"]))
    assert "ukgrid not asked" in shown.out and "planned on fallback carbon data" in shown.out


def test_with_no_back_off_every_submit_asks_again(cs: CS) -> None:
    _offline(cs, minutes=0)
    _submit(cs)
    assert "ukgrid failed" in str(_submit(cs)["plan_source"])
