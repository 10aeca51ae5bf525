"""A job cannot read the daemon's API tokens from ``/proc/<daemon pid>/environ``.

A real ``carbonshift run`` is started with provider credentials in its environment (the
configured ``token_env`` and the built-in defaults). Its job walks up its parent chain and
reads every ``environ`` it may: the daemon's is readable (same user) but holds no token,
while the provider still received the token (it was read at start-up, then hidden).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.cli.conftest import CS

TOKENS = {"EM_TOKEN": "tok-em-5b1f9e-SECRET", "ELECTRICITYMAPS_TOKEN": "tok-default-77aa-SECRET",
          "WATTTIME_PASSWORD": "pw-watttime-31c4-SECRET"}
REPO = Path(__file__).resolve().parents[2]

WALK = """\
import json, os
pid, seen = os.getppid(), []
while pid > 1:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
        seen.append({"pid": pid, "secret": b"SECRET" in data})
    except OSError:
        pass
    with open(f"/proc/{pid}/stat") as f:
        pid = int(f.read().rsplit(")", 1)[1].split()[1])
print(json.dumps(seen))
"""


def test_a_job_finds_no_token_in_the_daemons_environ(
    cs: CS, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []

    def refuse(req: Request) -> Response:
        sent.append(req.headers.get("auth-token", ""))
        return Response('{"error": "no"}', status=401)

    httpserver.expect_request(re.compile(".*")).respond_with_handler(refuse)
    cs.config.write_text(
        'default_zone = "DE"\n[intensity]\nproviders = ["electricitymaps"]\ntimeout_s = 2.0\n'
        "retry_failed_after_minutes = 0\n"
        f'[providers.electricitymaps]\nbase_url = "{httpserver.url_for("").rstrip("/")}"\n'
        'token_env = "EM_TOKEN"\nzones = ["DE"]\n'
    )
    monkeypatch.setenv("EM_TOKEN", TOKENS["EM_TOKEN"])  # the submitter's own, for planning
    r = cs("submit", "--json", "--now", "--duration", "1m", "--", sys.executable, "-c", WALK)
    assert r.code == 0, r.err
    job_id = json.loads(r.out)["id"]
    asked_before = len(sent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONSHIFT_")}
    env.update(TOKENS, PYTHONPATH=str(REPO), CARBONSHIFT_CONFIG=str(cs.config))
    daemon = subprocess.Popen(
        [sys.executable, "-c", "import sys; from scheduler.cli import main; sys.exit(main())",
         "run", "--exit-when-idle", "--sample-interval", "1s"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    out, _ = daemon.communicate(timeout=120)
    assert daemon.returncode == 0, out
    log = cs("logs", str(job_id))
    assert log.code == 0, log.err
    seen = json.loads(next(line for line in log.out.splitlines() if line.startswith("[")))
    assert daemon.pid in [p["pid"] for p in seen], (daemon.pid, seen)  # it was read
    assert not [p for p in seen if p["secret"]], seen
    # the provider still got the token: it was read before being hidden
    assert TOKENS["EM_TOKEN"] in sent[asked_before:], sent
