"""`wait` and `submit --wait` say when no daemon serves the job's site (one line naming
`carbonshift run`, and they keep waiting), and `--timeout DURATION` gives up with exit 1.
The real CLI and the real daemon, each in its own process, on an accelerated clock."""

from __future__ import annotations

import subprocess
import time

from tests.reliability.conftest import PY, REPO, Sim

CLI = [PY, "-c", "import sys; from scheduler.cli import main; sys.exit(main())"]
NOTICE = "no daemon is serving site local: start one with `carbonshift run`; still waiting"


def _submit(sim: Sim, *extra: str) -> int:
    r = sim.cli("submit", "--duration", "1m", "--now", *extra, "--", PY, "-c", "print('hi')")
    assert r.returncode == 0, r.stderr
    return int(r.stdout.split()[1])


def _timed_stderr(sim: Sim, *args: str) -> tuple[int, list[tuple[float, str]]]:
    """Run the CLI; each stderr line with the real seconds since the process started."""
    t0 = time.monotonic()
    proc = subprocess.Popen([*CLI, *args], env=sim.env(), cwd=str(REPO), stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    lines = [(time.monotonic() - t0, line.rstrip("\n")) for line in proc.stderr]
    return proc.wait(60), lines


def test_wait_says_no_daemon_serves_the_site_then_times_out(sim: Sim) -> None:
    job_id = _submit(sim)
    # the notice comes 6 s into the wait; 10 s leaves a check after it that must not repeat it
    code, lines = _timed_stderr(sim, "wait", str(job_id), "--timeout", "10s")
    notices = [(t, text) for t, text in lines if "no daemon" in text]
    print(f"notice after {notices[0][0]:.1f} s" if notices else "no notice", lines)
    assert code == 1
    assert [text for _, text in notices] == [f"carbonshift: {NOTICE}"]  # once, one line
    assert notices[0][0] < 12.0  # within 10 s of waiting (plus the command's start-up)
    assert "gave up waiting for job" in lines[-1][1] and "10s" in lines[-1][1]
    assert "Traceback" not in "\n".join(t for _, t in lines)


def test_a_daemon_of_another_site_does_not_count(sim: Sim) -> None:
    assert sim.cli("site", "add", "other", "--zone", "TRACE", "--gpus", "0").returncode == 0
    sim.start_daemon("--site", "other")
    job_id = _submit(sim)
    code, lines = _timed_stderr(sim, "wait", str(job_id), "--timeout", "9s", "--quiet")
    assert code == 1
    assert any(NOTICE in text for _, text in lines), lines


def test_submit_wait_with_a_daemon_says_nothing_and_exits_with_the_job(sim: Sim) -> None:
    sim.start_daemon("--exit-when-idle")
    code, lines = _timed_stderr(
        sim, "submit", "--duration", "1m", "--now", "--wait", "--timeout", "2m", "--",
        PY, "-c", "import sys; sys.exit(3)",
    )
    assert code == 3, lines
    assert not any("no daemon" in text for _, text in lines), lines


def test_bad_timeout_is_refused(sim: Sim) -> None:
    for args in (("wait", "1", "--timeout", "soon"),
                 ("submit", "--duration", "1m", "--timeout", "5m", "--", "true")):
        r = sim.cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "--timeout" in r.stderr, r.stderr
