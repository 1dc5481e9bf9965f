"""Verification (issue 14): the approval rules, every page and ACR-file operation, rotation, deletion and the
sealed package, through the service's operations (in-process, LocalConnection) on a real station."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pikepdf
import pyrage
import pytest
from PIL import Image, ImageChops

from batchformat import verify_package
from drivers.base import CancelToken, ColorMode, ScanSettings, Source
from drivers.registry import get_driver
from scanstation.config import load_config
from scanstation.errors import PermissionDenied, StateError, VerificationIncomplete
from scanstation.people.roles import Action
from scanstation.service.client import LocalConnection
from scanstation.service.core import StationService
from scanstation_tools.synth import PageSpec, render_acr_page
from tests.stationkit import PASSWORD, StationEnv, make_station

# sign-ins and unlocks of the services these tests run in this process at the test stations' argon2id cost
pytestmark = pytest.mark.usefixtures("cheap_argon2")

PEOPLE = ("sup", "sup2", "op", "head")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> StationEnv:
    return make_station(tmp_path_factory.mktemp("verify") / "st")


class Desk:
    """One in-process station service, everyone signed in; ``call(person, op, **args)``."""

    def __init__(self, service: StationService, conns: dict[str, LocalConnection], files: Path) -> None:
        self.service = service
        self.conns = conns
        self.files = files
        self.n = 0

    def call(self, person: str, op: str, **args: Any) -> Any:
        return self.conns[person].call(op, **args)

    @property
    def station(self) -> Any:
        return self.service._station

    def scan(self, batch: str, pages: int, *, employee: str | None = None, flags: tuple[str, ...] = (),
             by: str = "sup") -> list[int]:
        """Import ``pages`` synthetic pages into ``batch`` (a new ACR file of ``employee`` if given) as ``by``."""
        station = self.station
        b = station.store.open_batch(batch, "Test Unit", by)
        doc = None
        if employee is not None:
            doc = station.store.add_document(b.id, by, employee, f"Name {employee}", "SI", "2019-20",
                                             flags=list(flags))
        files = []
        for _ in range(pages):
            self.n += 1
            f = self.files / f"page-{self.n}.png"
            render_acr_page(PageSpec(seed=self.n, page_no=1, dpi=100)).image.save(f)
            files.append(f)
        driver = get_driver("import", files=files, tmp_dir=station.ramdir.path)
        settings = ScanSettings(source=Source.FLATBED, mode=ColorMode.GRAY, resolution=100)
        report = station.capture(batch, driver, "import", settings, cancel=CancelToken(), document=doc, operator=by)
        assert station.wait_idle(include_ocr=True, batch_id=b.id)
        return list(report.acknowledged)

    def detail(self, batch: str, person: str = "sup2") -> dict[str, Any]:
        return dict(self.call(person, "batch_detail", batch=batch))

    def order(self, batch: str) -> dict[int, list[int]]:
        """document id -> live page seqs in reading order."""
        out: dict[int, list[int]] = {}
        for p in self.detail(batch)["pages"]:
            if p["document_id"] is not None and not p["deleted"] and p["replaced_by"] is None:
                out.setdefault(p["document_id"], []).append(p["seq"])
        return out

    def show_all(self, batch: str, person: str = "sup2") -> None:
        for p in self.detail(batch, person)["pages"]:
            if not p["deleted"] and p["replaced_by"] is None:
                self.call(person, "page_image", batch=batch, seq=p["seq"])


@contextmanager
def desk(env: StationEnv, tmp_path: Path) -> Iterator[Desk]:
    service = StationService(load_config(env.config))
    conns: dict[str, LocalConnection] = {}
    try:
        for name in PEOPLE:
            conn = LocalConnection(service, owns_service=False)
            conn.token = conn.call("sign_in", name=name, password=PASSWORD)["token"]
            conns[name] = conn
        conns["sup2"].call("unlock", password=PASSWORD)
        yield Desk(service, conns, tmp_path)
    finally:
        service.close()


def test_approve_needs_every_page_shown_to_the_approver_and_judged_never_the_operator(
        env: StationEnv, tmp_path: Path) -> None:
    with desk(env, tmp_path) as d:
        d.scan("A", 3, employee="E1")
        with pytest.raises(StateError, match="scanning"):  # nothing is verified before the operator closes it
            d.call("sup2", "review", batch="A", seq=1, verdict="ok")
        with pytest.raises(PermissionDenied):  # op neither opened nor captured it
            d.call("op", "close_batch", batch="A")
        assert d.call("sup", "close_batch", batch="A")["state"] == "closed"
        assert [q["name"] for q in d.call("sup2", "review_queue") if q["state"] == "closed"] == ["A"]

        with pytest.raises(VerificationIncomplete) as e:
            d.call("sup2", "approve", batch="A")
        assert "3 of 3 page(s) not yet shown to sup2: 1, 2, 3" in e.value.message
        assert "3 page(s) without a verdict: 1, 2, 3" in e.value.message and e.value.exit_code == 29

        for seq in (1, 2, 3):  # verdicts from a screen that never fetched the pages
            d.call("sup2", "review", batch="A", seq=seq, verdict="ok")
        assert d.detail("A")["state"] == "in-verification"
        for seq in (1, 2, 3):  # thumbnails are not "served"
            thumb = Image.open(io.BytesIO(d.call("sup2", "page_thumbnail", batch="A", seq=seq, width=120)))
            assert thumb.width == 120
        detail = d.detail("A")
        assert (detail["seen"], detail["total"], detail["can_approve"]) == (0, 3, False)
        d.call("sup2", "page_image", batch="A", seq=1)
        d.call("sup2", "page_image", batch="A", seq=3)
        with pytest.raises(VerificationIncomplete, match=r"1 of 3 page\(s\) not yet shown to sup2: 2$"):
            d.call("sup2", "approve", batch="A")
        d.call("sup2", "page_image", batch="A", seq=2)
        detail = d.detail("A")
        assert (detail["seen"], detail["total"], detail["blockers"], detail["can_approve"]) == (3, 3, [], True)

        with pytest.raises(PermissionDenied, match=r"sup \(supervisor\) may not approve batch A"):
            d.call("sup", "approve", batch="A")  # the batch's own operator (it captured every page)
        with pytest.raises(PermissionDenied):
            d.call("head", "approve", batch="A")  # the unit head signs, never approves
        assert d.call("sup2", "approve", batch="A") == {"state": "verified"}
        # sign-off's four eyes now know who verified and approved
        facts = d.service.batch_facts("A")
        assert facts.approved_by == "sup2" and facts.verified_by == {"sup2"}


def test_the_batch_opener_may_not_verify_even_without_pages_of_their_own(env: StationEnv, tmp_path: Path) -> None:
    with desk(env, tmp_path) as d:
        d.station.store.open_batch("O", "Test Unit", "sup2")  # sup2 started it, sup scanned the pages
        d.scan("O", 1, by="sup")
        d.call("sup", "close_batch", batch="O")
        with pytest.raises(PermissionDenied, match="their own batch"):
            d.call("sup2", "review", batch="O", seq=1, verdict="ok")


def test_rescan_return_replace_in_place_and_close_again(env: StationEnv, tmp_path: Path) -> None:
    with desk(env, tmp_path) as d:
        d.scan("R", 3, employee="E2")
        d.call("sup", "close_batch", batch="R")
        with pytest.raises(StateError, match="needs a reason"):
            d.call("sup2", "review", batch="R", seq=2, verdict="rescan")
        d.call("sup2", "review", batch="R", seq=2, verdict="rescan", reason="poorly scanned")
        d.show_all("R")
        for seq in (1, 3):
            d.call("sup2", "review", batch="R", seq=seq, verdict="ok")
        with pytest.raises(VerificationIncomplete, match=r"1 page\(s\) to be rescanned \(return the batch\): 2"):
            d.call("sup2", "approve", batch="R")
        assert d.call("sup2", "return_batch", batch="R", reason="page 2 poorly scanned") == {"state": "returned"}
        asked = [r for r in d.call("sup", "rescans") if r["batch"] == "R"]
        assert [(r["seq"], r["reason"], r["given_by"]) for r in asked] == [(2, "poorly scanned", "sup2")]
        with pytest.raises(PermissionDenied):
            d.call("op", "rescans", batch="R")  # not op's batch

        new = d.scan("R", 1)  # the operator's rescan (lands at the end, in no file)...
        assert new == [4]
        # a page scanned before it is another record, never its rescan (a kiosk replaying an earlier run's pages)
        with pytest.raises(StateError, match="page 1 was scanned before page 2"):
            d.call("sup", "replace_page", batch="R", old_seq=2, new_seq=1)
        assert d.order("R") == {d.detail("R")["documents"][0]["id"]: [1, 2, 3]}
        d.call("sup", "replace_page", batch="R", old_seq=2, new_seq=4)  # ...takes page 2's file and place
        doc_id = d.detail("R")["documents"][0]["id"]
        assert d.order("R") == {doc_id: [1, 4, 3]}
        old = next(p for p in d.detail("R")["pages"] if p["seq"] == 2)
        assert old["replaced_by"] is not None and old["verdict"] == "rescan"
        assert d.call("sup", "rescans", batch="R") == []
        assert d.call("sup", "close_batch", batch="R")["state"] == "closed"
        returns = d.detail("R")["returns"]
        assert returns[0]["reason"] == "page 2 poorly scanned" and returns[0]["closed_at"]

        with pytest.raises(VerificationIncomplete) as e:
            d.call("sup2", "approve", batch="R")
        assert "page(s) without a verdict: 4" in e.value.message and "not yet shown to sup2: 4" in e.value.message
        d.call("sup2", "page_image", batch="R", seq=4)
        d.call("sup2", "review", batch="R", seq=4, verdict="ok")
        assert d.call("sup2", "approve", batch="R") == {"state": "verified"}
        assert d.detail("R")["total"] == 3  # the replaced page does not count


def test_rotation_is_lossless_the_text_is_read_again_and_deleted_pages_are_never_packaged(
        env: StationEnv, tmp_path: Path) -> None:
    with desk(env, tmp_path) as d:
        d.scan("D", 3, employee="E3")
        d.call("sup", "close_batch", batch="D")
        before = Image.open(io.BytesIO(d.call("sup2", "page_image", batch="D", seq=1)))
        before.load()
        page1 = d.call("sup2", "review", batch="D", seq=1, verdict="rotate-90")
        assert (page1["rotation"], page1["verdict"], page1["ocr"]) == (90, "rotate-90", "pending")
        turned = Image.open(io.BytesIO(d.call("sup2", "page_image", batch="D", seq=1)))
        turned.load()
        assert turned.size == (before.height, before.width)
        # exactly the stored pixels, turned clockwise (no resampling)
        assert ImageChops.difference(turned, before.transpose(Image.Transpose.ROTATE_270)).getbbox() is None
        d.call("sup2", "review", batch="D", seq=1, verdict="rotate-0")  # round trip back to as scanned
        back = Image.open(io.BytesIO(d.call("sup2", "page_image", batch="D", seq=1)))
        assert ImageChops.difference(back.convert(before.mode), before).getbbox() is None
        d.call("sup2", "review", batch="D", seq=1, verdict="rotate-90")

        with pytest.raises(StateError, match="needs a reason"):
            d.call("sup2", "review", batch="D", seq=2, verdict="delete")
        d.call("sup2", "review", batch="D", seq=2, verdict="delete", reason="blank page")
        d.call("sup2", "review", batch="D", seq=3, verdict="ok")
        d.show_all("D")
        b = d.station.store.batch("D")
        assert d.station.wait_idle(include_ocr=True, batch_id=b.id)  # page 1 read again, turned
        text = d.call("sup2", "page_text", batch="D", seq=1)
        assert text["state"] == "done" and text["text"].strip()
        assert d.detail("D")["total"] == 2
        assert d.call("sup2", "approve", batch="D") == {"state": "verified"}

        from scanstation.seal.sealing import seal_batch, unseal_batch

        station = d.service.station(d.service.caller(str(d.conns["head"].token)), Action.SEAL)
        info = seal_batch(station, "D", "head")
        portal = pyrage.x25519.Identity.from_str(env.portal_identity_file.read_text().strip())
        verified = verify_package(info.path, [portal])
        manifest = verified.manifest
        deleted = d.station.store.page_by_seq(b.id, 2)
        assert manifest["batch"]["page_count"] == 2
        (doc,) = manifest["documents"]
        assert [(p["seq"], p["position"], p["rotation"]) for p in doc["pages"]] == [(1, 1, 90), (3, 2, 0)]
        assert manifest["unfiled_pages"] == []
        packaged = {o["id"] for o in manifest["objects"]}
        assert not {deleted.raw_object, deleted.image_object, deleted.ocr_object} & packaged
        pdf_bytes = pyrage.decrypt(verified.object_member(doc["pdf"]), [portal])
        with pikepdf.open(io.BytesIO(pdf_bytes)) as pdf:
            assert len(pdf.pages) == 2
            box = [float(v) for v in pdf.pages[0].mediabox]
            assert box[2] - box[0] > box[3] - box[1]  # the portrait A4 page turned a quarter: landscape
        # deleted page kept in the vault until purge (its cleaned image; every raw capture is destroyed at the seal)
        assert d.station.read_object(deleted.image_object)
        assert deleted.raw_object in d.station.store.destroyed_object_ids()

        unseal_batch(station, "D", "head")
        assert d.station.store.batch("D").state.value == "returned"


def test_move_reorder_split_merge_and_the_operators_insert(env: StationEnv, tmp_path: Path) -> None:
    with desk(env, tmp_path) as d:
        d.scan("M", 3, employee="E4")  # seq 1-3
        d.scan("M", 2, employee="E5")  # seq 4-5
        d.call("sup", "close_batch", batch="M")
        a, b = (doc["id"] for doc in d.detail("M")["documents"])
        moved = d.call("sup2", "move_page", batch="M", seq=5, document_id=a, position=1)
        assert {(p["seq"], p["document_id"], p["position"]) for p in moved["pages"]} >= {(5, a, 1), (4, b, 1)}
        assert d.order("M") == {a: [5, 1, 2, 3], b: [4]}
        assert d.detail("M")["state"] == "in-verification"
        d.call("sup2", "move_page", batch="M", seq=3, document_id=a, position=2)  # reorder
        assert d.order("M") == {a: [5, 3, 1, 2], b: [4]}
        split = d.call("sup2", "split_document", batch="M", document_id=a, at_seq=1)
        c = split["new_document_id"]
        assert d.order("M") == {a: [5, 3], b: [4], c: [1, 2]}
        new_doc = next(doc for doc in d.detail("M")["documents"] if doc["id"] == c)
        assert new_doc["employee_code"] == "E4"  # the same index, to be corrected next
        with pytest.raises(StateError, match="first page"):
            d.call("sup2", "split_document", batch="M", document_id=c, at_seq=1)
        d.call("sup2", "merge_documents", batch="M", document_id=c, into=b)
        assert d.order("M") == {a: [5, 3], b: [4, 1, 2]}
        assert [doc["id"] for doc in d.detail("M")["documents"]] == [a, b]  # the emptied file is gone
        with pytest.raises(StateError, match="removed"):
            d.call("sup2", "move_page", batch="M", seq=4, document_id=c, position=1)

        # the operator's insert: only while the batch is in capture
        with pytest.raises(StateError, match="in capture"):
            d.call("sup", "insert_page", batch="M", seq=4, document_id=a, position=1)
        d.call("sup2", "return_batch", batch="M", reason="missing page")
        (new,) = d.scan("M", 1)
        with pytest.raises(PermissionDenied):
            d.call("op", "insert_page", batch="M", seq=new, document_id=a, position=2)
        d.call("sup", "insert_page", batch="M", seq=new, document_id=a, position=2)
        assert d.order("M") == {a: [5, new, 3], b: [4, 1, 2]}
        d.call("sup", "close_batch", batch="M")
        d.show_all("M")
        for p in d.detail("M")["pages"]:
            d.call("sup2", "review", batch="M", seq=p["seq"], verdict="ok")
        assert d.call("sup2", "approve", batch="M") == {"state": "verified"}


def test_document_flags_need_a_verdict_and_a_rejected_flag_blocks(env: StationEnv, tmp_path: Path) -> None:
    with desk(env, tmp_path) as d:
        d.scan("F", 1, employee="E6", flags=("not_in_roster",))
        d.call("sup", "close_batch", batch="F")
        d.show_all("F")
        d.call("sup2", "review", batch="F", seq=1, verdict="ok")
        (doc,) = d.detail("F")["documents"]
        with pytest.raises(VerificationIncomplete, match=r"ACR file 1: flag\(s\) without a verdict: not_in_roster"):
            d.call("sup2", "approve", batch="F")
        with pytest.raises(StateError, match="needs a reason"):
            d.call("sup2", "flag_verdict", batch="F", document_id=doc["id"], flag="not_in_roster", verdict="rejected")
        with pytest.raises(StateError, match="has no flag"):
            d.call("sup2", "flag_verdict", batch="F", document_id=doc["id"], flag="duplicate", verdict="accepted")
        row = d.call("sup2", "flag_verdict", batch="F", document_id=doc["id"], flag="not_in_roster",
                     verdict="rejected", reason="wrong employee")
        assert row["flag_verdicts"]["not_in_roster"]["verdict"] == "rejected"
        with pytest.raises(VerificationIncomplete, match="rejected"):
            d.call("sup2", "approve", batch="F")
        d.call("sup2", "flag_verdict", batch="F", document_id=doc["id"], flag="not_in_roster", verdict="accepted")
        assert d.call("sup2", "approve", batch="F") == {"state": "verified"}


def test_reindex_is_checked_against_the_roster_and_clears_flag_verdicts(env: StationEnv, tmp_path: Path) -> None:
    from scanstation.errors import NotInRoster

    roster = tmp_path / "roster.csv"
    roster.write_text("employee code,name,rank,unit\nK100,Asha Verma,SI,Test Unit\nK200,Ravi Kumar,ASI,Test Unit\n")
    env.run("roster", "import", str(roster), check=True)
    with desk(env, tmp_path) as d:
        d.scan("X", 1, employee="ZZZ", flags=("not_in_roster",))
        d.call("sup", "close_batch", batch="X")
        (doc,) = d.detail("X")["documents"]
        d.call("sup2", "flag_verdict", batch="X", document_id=doc["id"], flag="not_in_roster", verdict="accepted")
        with pytest.raises(NotInRoster):
            d.call("sup2", "reindex", batch="X", document_id=doc["id"], employee_code="NOPE", period="2019-20")
        row = d.call("sup2", "reindex", batch="X", document_id=doc["id"], employee_code="K200", period="2019-20")
        assert (row["employee_code"], row["acr_period"], row["flags"], row["flag_verdicts"]) == \
            ("K200", "2019-20", [], {})
        assert "Ravi" in row["employee_name"]
        d.show_all("X")
        d.call("sup2", "review", batch="X", seq=1, verdict="ok")
        # re-indexing is verification, not capture: the supervisor who corrected the index still approves
        assert d.call("sup2", "approve", batch="X") == {"state": "verified"}


def test_reasons_queue_and_text(env: StationEnv, tmp_path: Path) -> None:
    with desk(env, tmp_path) as d:
        reasons = d.call("op", "reasons")
        assert reasons[:5] == ["illegible", "missing page", "poorly scanned", "skewed", "wrong employee"]
        with pytest.raises(PermissionDenied):
            d.call("op", "review_queue")
        queue = d.call("head", "review_queue")
        assert all(set(q) == {"name", "state", "pages", "documents", "flagged", "operator", "closed_at"}
                   for q in queue)
        assert json.dumps(queue)  # plain JSON for the wire


def test_an_acr_file_whose_pages_were_all_deleted_is_not_packaged(env: StationEnv, tmp_path: Path) -> None:
    from scanstation.seal.sealing import seal_batch

    with desk(env, tmp_path) as d:
        d.scan("E", 1, employee="E7")
        d.scan("E", 1, employee="E8", flags=("duplicate",))  # wrongly filed: its only page is deleted
        d.call("sup", "close_batch", batch="E")
        d.show_all("E")
        d.call("sup2", "review", batch="E", seq=1, verdict="ok")
        d.call("sup2", "review", batch="E", seq=2, verdict="delete", reason="not part of this ACR")
        detail = d.detail("E")
        assert [doc["pages"] for doc in detail["documents"]] == [1, 0] and detail["can_approve"]
        d.call("sup2", "approve", batch="E")  # the empty file's flag needs no verdict
        station = d.service.station(d.service.caller(str(d.conns["head"].token)), Action.SEAL)
        info = seal_batch(station, "E", "head")
        portal = pyrage.x25519.Identity.from_str(env.portal_identity_file.read_text().strip())
        manifest = verify_package(info.path, [portal]).manifest
        assert [doc["employee_code"] for doc in manifest["documents"]] == ["E7"]
        assert manifest["batch"]["page_count"] == 1 and manifest["unfiled_pages"] == []


@pytest.mark.parametrize("reasons", ["[]", '["illegible", "  "]', f'["{"x" * 81}"]'])
def test_configured_reasons_are_checked(tmp_path: Path, reasons: str) -> None:
    from scanstation.errors import ConfigError

    f = tmp_path / "station.toml"
    f.write_text(f"[verification]\nreasons = {reasons}\n")
    with pytest.raises(ConfigError, match=r"verification\.reasons"):
        load_config(f)
    f.write_text('[verification]\nreasons = ["torn page", " illegible "]\n')
    assert load_config(f).verification.reasons == ["torn page", "illegible"]
