"""The verification commands by the names acceptance checks use: ``batch close``, ``review``, ``approve``,
``return``, ``status --json`` verdicts, ``--replace-page``; in-process and through a running service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scanstation_tools.synth import PageSpec, render_acr_page
from tests.stationkit import StationEnv, make_station


def _pages(tmp: Path, name: str, n: int, seed: int) -> list[str]:
    files = []
    for i in range(n):
        f = tmp / f"{name}-{i}.png"
        render_acr_page(PageSpec(seed=seed + i, page_no=i + 1, dpi=100)).image.save(f)
        files.append(str(f))
    return files


def _batch(st: StationEnv, name: str, user: str = "sup2") -> dict:
    data = json.loads(st.run("status", "--batch", name, "--json", "--user", user, check=True).stdout)
    return dict(data["batches"][0])


@pytest.fixture(scope="module")
def st(tmp_path_factory: pytest.TempPathFactory) -> StationEnv:
    return make_station(tmp_path_factory.mktemp("cliverify") / "st")


def test_close_review_approve_return_replace_and_seal(st: StationEnv, tmp_path: Path) -> None:
    st.run("import", "--batch", "B1", *_pages(tmp_path, "b1", 3, 40), check=True)  # scanned by sup
    refused = st.run("seal", "--batch", "B1")
    assert refused.returncode == 7 and "only a verified batch can be sealed" in refused.stderr
    early = st.run("approve", "--batch", "B1", "--user", "sup2")
    assert early.returncode == 29 and "the batch is scanning" in early.stderr

    closed = st.run("batch", "close", "--batch", "B1", check=True)
    assert "closed by sup" in closed.stdout
    assert _batch(st, "B1")["state"] == "closed"

    own = st.run("approve", "--batch", "B1", "--user", "sup")
    assert own.returncode == 22 and "may not approve batch B1" in own.stderr
    incomplete = st.run("approve", "--batch", "B1", "--user", "sup2")
    assert incomplete.returncode == 29
    assert "3 page(s) without a verdict: 1, 2, 3" in incomplete.stderr

    no_reason = st.run("review", "--batch", "B1", "--page", "3", "--verdict", "delete", "--user", "sup2")
    assert no_reason.returncode == 7 and "needs a reason" in no_reason.stderr
    st.run("review", "--batch", "B1", "--page", "1", "--verdict", "ok", "--user", "sup2", check=True)
    rotated = st.run("review", "--batch", "B1", "--page", "2", "--verdict", "rotate-180", "--user", "sup2",
                     check=True)
    assert "turned 180" in rotated.stdout and "audited as such" in rotated.stdout
    st.run("review", "--batch", "B1", "--page", "3", "--verdict", "delete", "--reason", "blank page", "--user",
           "sup2", check=True)
    b = _batch(st, "B1")
    assert b["state"] == "in-verification"
    assert [(p["seq"], p["verdict"], p["rotation"], p["deleted"]) for p in b["page_list"]] == [
        (1, "ok", 0, False), (2, "rotate-180", 180, False), (3, "delete", 0, True)]
    assert b["page_list"][2]["reason"] == "blank page"

    st.run("approve", "--batch", "B1", "--user", "sup2", check=True)
    assert _batch(st, "B1")["state"] == "verified"
    audit = json.loads(st.run("audit", "show", "--batch", "B1", "--json", "--user", "sup2", check=True).stdout)
    verdicts = [e for e in audit if e["action"] == "page.verdict"]
    assert len(verdicts) == 3 and all(e["detail"]["via"] == "script" for e in verdicts)
    assert all("scripted QC from a shell" in e["detail"]["note"] for e in verdicts)
    assert all("blank page" not in json.dumps(e["detail"]) for e in verdicts)  # the reason is sealed
    assert any(e["action"] == "batch.approve" and e["actor"] == "sup2" for e in audit)

    # the unit head will not sign: back to the operator, with the reason
    assert st.run("return", "--batch", "B1", "--reason", "page 1 illegible", "--user", "sup").returncode == 22
    st.run("return", "--batch", "B1", "--reason", "page 1 illegible", "--user", "head", check=True)
    assert _batch(st, "B1")["state"] == "returned"

    too_many = st.run("import", "--batch", "B1", "--replace-page", "1", *_pages(tmp_path, "two", 2, 70))
    assert too_many.returncode == 7 and "takes exactly one page" in too_many.stderr  # both kept, pages 4 and 5
    st.run("import", "--batch", "B1", "--replace-page", "1", *_pages(tmp_path, "re", 1, 80), check=True)
    b = _batch(st, "B1")
    new = b["page_list"][-1]
    assert new["seq"] == 6 and b["page_list"][0]["replaced_by"] == new["id"]
    st.run("batch", "close", "--batch", "B1", check=True)
    # pages 4 and 5 (the refused replace) came in unfiled: the supervisor deletes them
    st.run("review", "--batch", "B1", "--page", "4", "--page", "5", "--verdict", "delete", "--reason",
           "duplicate page", "--user", "sup2", check=True)
    again = st.run("approve", "--batch", "B1", "--user", "sup2")
    assert again.returncode == 29 and "without a verdict: 6" in again.stderr
    st.run("review", "--batch", "B1", "--page", "6", "--verdict", "ok", "--user", "sup2", check=True)
    st.run("approve", "--batch", "B1", "--user", "sup2", check=True)
    sealed = st.run("seal", "--batch", "B1", check=True)
    assert "sealed batch B1" in sealed.stdout
    assert _batch(st, "B1")["state"] == "sealed"


def test_the_operator_closes_through_the_running_service_and_may_not_approve(st: StationEnv, tmp_path: Path) -> None:
    with st.serve():
        st.run("import", "--batch", "OP1", *_pages(tmp_path, "op", 2, 90), "--user", "op", check=True)
        not_theirs = st.run("batch", "close", "--batch", "B1", "--user", "op")
        assert not_theirs.returncode == 22 and "no longer in capture" in not_theirs.stderr  # B1 is sealed
        st.run("batch", "close", "--batch", "OP1", "--user", "op", check=True)
        again = st.run("batch", "close", "--batch", "OP1", "--user", "op")
        assert again.returncode == 22  # no longer in capture: not the operator's to touch
        assert st.run("approve", "--batch", "OP1", "--user", "op").returncode == 22
        st.run("review", "--batch", "OP1", "--page", "1", "--verdict", "rescan", "--reason", "skewed", "--user",
               "sup", check=True)
        hidden = _batch(st, "OP1", user="op")  # an operator's status: verdicts yes, free-text reasons no
        assert hidden["page_list"][0]["verdict"] == "rescan" and hidden["page_list"][0]["reason"] == "(hidden)"
        st.run("return", "--batch", "OP1", "--reason", "rescan page 1", "--user", "sup", check=True)
        rescans = json.loads(st.run("rescans", "--json", "--user", "op", check=True).stdout)
        assert [(r["batch"], r["seq"], r["reason"]) for r in rescans] == [("OP1", 1, "skewed")]
        st.run("import", "--batch", "OP1", "--replace-page", "1", *_pages(tmp_path, "opre", 1, 95), "--user", "op",
               check=True)
        st.run("batch", "close", "--batch", "OP1", "--user", "op", check=True)
        st.run("review", "--batch", "OP1", "--page", "2", "--page", "3", "--verdict", "ok", "--user", "sup",
               check=True)
        st.run("approve", "--batch", "OP1", "--user", "sup", check=True)
        assert _batch(st, "OP1", user="sup")["state"] == "verified"
