"""The capacity ledger (numpy counts, the planner's speed) against its plain reference
(per-slot counts read one at a time), a capped sweep's pair of ledgers included: the same
takes give the same blocked slots, the same ``free`` answers and the same spans."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.model import Site
from scheduler.planning.capacity import Blocked, Capped, Ledger, NaiveLedger

SLOT = 300
K0 = 5  # slots before ``k0`` are clipped to slot 0, as the planner's ``now`` does

takes_st = st.lists(st.tuples(st.integers(0, 40), st.integers(1, 12), st.integers(0, 4),
                              st.integers(0, 20), st.sampled_from([1, 1, 1, -1])), max_size=12)
asks_st = st.lists(st.tuples(st.integers(0, 50), st.integers(0, 15), st.integers(0, 5),
                             st.integers(0, 24)), min_size=1, max_size=8)


def pair(gpus: int, cpus: int) -> tuple[Ledger, NaiveLedger]:
    site = Site("s", "Z", gpus=gpus, cpus=cpus)
    return Ledger(site, SLOT, K0), NaiveLedger(site, SLOT, K0)


def secs(k: int) -> int:
    """The epoch second where ledger slot ``k`` (from ``k0``) begins, off the grid by 7 s."""
    return (K0 + k) * SLOT + 7


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 4), st.integers(0, 20), takes_st, asks_st)
def test_the_ledger_answers_as_its_plain_reference(
    gpus: int, cpus: int, takes: list[tuple[int, int, int, int, int]],
    asks: list[tuple[int, int, int, int]],
) -> None:
    fast, plain = pair(gpus, cpus)
    for k, n, g, c, sign in takes:
        fast.take(secs(k), secs(k + n), g, c, sign)
        plain.take(secs(k), secs(k + n), g, c, sign)
    for a, n, g, c in asks:
        assert fast.manages(g, c) == plain.manages(g, c)
        assert fast.can_ever(g, c) == plain.can_ever(g, c)
        assert fast.span(secs(a), secs(a + n)) == plain.span(secs(a), secs(a + n))
        assert fast.blocked(a, a + n, g, c).tolist() == plain.blocked(a, a + n, g, c)
        assert fast.free(secs(a), secs(a + n), g, c) == plain.free(secs(a), secs(a + n), g, c)
        if n:
            want = plain.blocked(a, a + n, g, c)
            seen = Blocked(fast, a, a + n, g, c)
            assert seen.clear(a, a + n) == (not any(want))
            last = max((a + i for i, x in enumerate(want) if x), default=-1)
            assert seen.last(a, a + n) == last


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 4), st.integers(1, 4), st.booleans(), takes_st, takes_st, asks_st)
def test_a_capped_sweep_reads_both_ledgers_as_the_references_do(
    gpus: int, cap: int, managed: bool, site_takes: list[tuple[int, int, int, int, int]],
    trial_takes: list[tuple[int, int, int, int, int]], asks: list[tuple[int, int, int, int]],
) -> None:
    """A slot is blocked for a trial where its site cannot take it or its sweep already
    runs ``cap`` trials; the fast pair and the plain pair agree slot by slot."""
    fast_site, plain_site = pair(gpus, 0)
    fast_sweep, plain_sweep = pair(cap, 0)
    for k, n, g, _, sign in site_takes:
        fast_site.take(secs(k), secs(k + n), g, 0, sign)
        plain_site.take(secs(k), secs(k + n), g, 0, sign)
    for k, n, _, _, sign in trial_takes:
        fast_sweep.take(secs(k), secs(k + n), 1, 0, sign)
        plain_sweep.take(secs(k), secs(k + n), 1, 0, sign)
    fast = Capped(fast_site if managed else None, fast_sweep)
    for a, n, g, _ in asks:
        # the plain definition, slot by slot
        want = [plain_sweep.blocked(k, k + 1, 1, 0)[0]
                or (managed and plain_site.manages(g, 0) and plain_site.blocked(k, k + 1, g, 0)[0])
                for k in range(a, a + n)]
        assert list(fast.blocked(a, a + n, g, 0).tolist()) == want
        free = plain_sweep.free(secs(a), secs(a + n), 1, 0) and (
            not managed or plain_site.free(secs(a), secs(a + n), g, 0))
        assert fast.free(secs(a), secs(a + n), g, 0) == free
        assert fast.can_ever(g, 0) == (not managed or plain_site.can_ever(g, 0))
