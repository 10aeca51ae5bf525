"""The sweep rules that need no daemon: ``--array`` against a plain reference parser,
``--sweep FILE`` lines, trial commands, references (``s3``), and the bad inputs of each."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.errors import BadInput
from scheduler.sweeps import (
    MAX_TRIALS,
    ArraySpec,
    parse_array,
    parse_sweep_ref,
    read_sweep_file,
    trial_argv,
)


def _digits(s: str) -> bool:
    return s.isascii() and s.isdigit()


def reference(text: str) -> tuple[list[int], int | None] | None:
    """Slurm's --array, the obvious way: ``None`` where it is refused."""
    body, _, cap = text.partition("%")
    if "%" in text and (not _digits(cap) or int(cap) < 1):
        return None
    if "%" in text and not body.strip():
        return [], int(cap)  # the cap alone, for --sweep FILE (its trials come from the file)
    out: list[int] = []
    for item in body.split(","):
        item = item.strip()
        rng, _, step = item.partition(":")
        lo, dash, hi = rng.partition("-")
        if not _digits(lo) or (dash and not _digits(hi)) or (":" in item and (not dash or not _digits(step))):
            return None
        a, b, k = int(lo), int(hi) if dash else int(lo), int(step) if step else 1
        if b < a or k < 1:
            return None
        out += list(range(a, b + 1, k))
    if len(set(out)) != len(out) or len(out) > MAX_TRIALS:
        return None
    return out, int(cap) if "%" in text else None


items = st.one_of(
    st.integers(0, 60).map(str),
    st.tuples(st.integers(0, 60), st.integers(0, 60)).map(lambda t: f"{t[0]}-{t[1]}"),
    st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(0, 7)).map(lambda t: f"{t[0]}-{t[1]}:{t[2]}"),
    st.sampled_from(["", " ", "a", "-3", "1-", "1--2", "1:2", "x-y", "1-2:", "٣"]),
)
specs = st.tuples(st.lists(items, min_size=1, max_size=4), st.one_of(
    st.just(""), st.integers(0, 9).map(lambda n: f"%{n}"), st.sampled_from(["%", "%x", "%-1", "%%2"]),
)).map(lambda t: ",".join(t[0]) + t[1])


@given(specs)
def test_parse_array_agrees_with_the_reference(text: str) -> None:
    want = reference(text)
    if want is None:
        with pytest.raises(BadInput) as info:
            parse_array(text)
        assert "\n" not in str(info.value) and "--array" in str(info.value)
    else:
        assert parse_array(text) == ArraySpec(tuple(want[0]), want[1])


@pytest.mark.parametrize(("text", "indices", "limit"), [
    ("0-3", (0, 1, 2, 3), None),
    ("0-99%4", tuple(range(100)), 4),
    ("1,3,5-9%2", (1, 3, 5, 6, 7, 8, 9), 2),
    ("0-20:5", (0, 5, 10, 15, 20), None),
    (" 7 ", (7,), None),
    ("%4", (), 4),  # the cap alone, for --sweep FILE
])
def test_parse_array_examples(text: str, indices: tuple[int, ...], limit: int | None) -> None:
    assert parse_array(text) == ArraySpec(indices, limit)


@pytest.mark.parametrize(("text", "needle"), [
    ("9-5", "backwards"), ("1,1", "twice"), ("0-3,2", "twice"), ("0-9%0", "at least 1"),
    ("0-9%x", "%"), ("a", "'a'"), ("0-99999999", "largest"), (f"0-{MAX_TRIALS}", "split the sweep"),
    ("1-5:0", "step"), ("", "''"),
])
def test_parse_array_refuses(text: str, needle: str) -> None:
    with pytest.raises(BadInput, match=needle):
        parse_array(text)


def test_sweep_refs() -> None:
    assert parse_sweep_ref("s3") == 3 and parse_sweep_ref(" S12 ") == 12
    assert parse_sweep_ref("3") is None and parse_sweep_ref("s") is None and parse_sweep_ref("s-1") is None


def test_trial_argv_substitutes_index_and_args() -> None:
    assert trial_argv(["train", "--seed", "{index}", "--out=run{index}"], 7) == ["train", "--seed", "7", "--out=run7"]
    assert trial_argv(["train", "--seed", "{index}"], 2, ["--lr", "0.1"]) == ["train", "--seed", "2", "--lr", "0.1"]
    assert trial_argv(["train", "{args}", "--fast"], 0, ["--lr", "a b"]) == ["train", "--lr", "a b", "--fast"]
    assert trial_argv(["python train.py {args}"], 0, ["--lr", "a b"]) == ["python train.py --lr 'a b'"]
    assert trial_argv(["echo", "{args}"], 0, None) == ["echo", "{args}"]  # only a --sweep has args


def test_read_sweep_file(tmp_path: Path) -> None:
    f = tmp_path / "grid.txt"
    f.write_text("--lr 0.1 --wd 0\n\n# a comment\n  --lr '0.01 x'\n")
    assert read_sweep_file(f) == [["--lr", "0.1", "--wd", "0"], ["--lr", "0.01 x"]]
    f.write_text("--lr 0.1\n--name 'open\n")
    with pytest.raises(BadInput, match="line 2"):
        read_sweep_file(f)
    f.write_text("# nothing\n\n")
    with pytest.raises(BadInput, match="no trial"):
        read_sweep_file(f)
    with pytest.raises(BadInput, match="cannot be read"):
        read_sweep_file(tmp_path / "missing.txt")


def test_a_trial_knows_its_sweep_and_index_on_every_executor() -> None:
    from datetime import UTC, datetime

    from scheduler.executors.base import job_environment
    from scheduler.executors.slurm import build_batch_script
    from scheduler.model import Job

    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    job = Job(name="lr[4]", argv=["train"], duration_s=60, zone="GB", submitted_at=t0, earliest_start=t0,
              latest_start=t0, deadline_at=None, id=9, sweep_id=3, array_index=4, sweep_limit=2)
    env = job_environment(job, 17, "hpc")
    assert env["CARBONSHIFT_SWEEP_ID"] == "3" and env["CARBONSHIFT_ARRAY_INDEX"] == "4"
    script = build_batch_script(job, env, run_id=17)
    assert "CARBONSHIFT_ARRAY_INDEX=4" in script.replace("'", "")
    plain = job_environment(Job(name="j", argv=["x"], duration_s=60, zone="GB", submitted_at=t0,
                                earliest_start=t0, latest_start=t0, deadline_at=None, id=1), 2, "local")
    assert "CARBONSHIFT_SWEEP_ID" not in plain and "CARBONSHIFT_ARRAY_INDEX" not in plain
