"""The permission matrix, cell by cell, and the four-eyes rules (issue 13, scope item 4).

The expected answers are written out here, not read from the module: a change of the matrix has to be
made twice, on purpose.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scanstation.domain import BatchState
from scanstation.errors import PermissionDenied
from scanstation.people.permissions import (
    BatchFacts,
    allowed,
    allowed_actions,
    check,
    matrix_markdown,
    sees_personal_fields,
)
from scanstation.people.roles import Action, Role

ROOT = Path(__file__).resolve().parent.parent

# yes: always; no: never; own: an operator's own batch still in capture only; 4e: yes, under four eyes.
#                              operator  supervisor unit-head admin
EXPECTED: dict[str, tuple[str, str, str, str]] = {
    "scan":         ("yes",    "yes",    "no",     "no"),
    "index":        ("own",    "yes",    "no",     "no"),
    "view-page":    ("own",    "yes",    "yes",    "no"),
    "close-batch":  ("own",    "yes",    "no",     "no"),
    "verify":       ("no",     "4e",     "no",     "no"),
    "return":       ("no",     "4e",     "4e",     "no"),
    "approve":      ("no",     "4e",     "no",     "no"),
    "sign-off":     ("no",     "no",     "4e",     "no"),
    "seal":         ("no",     "no",     "yes",    "no"),
    "upload":       ("no",     "yes",    "yes",    "no"),
    "manage-users": ("no",     "no",     "no",     "yes"),
    "configure":    ("no",     "no",     "no",     "yes"),
    "read-audit":   ("no",     "yes",    "yes",    "yes"),
    "unlock":       ("no",     "yes",    "yes",    "no"),
    "lock":         ("no",     "yes",    "yes",    "yes"),
    "status":       ("yes",    "yes",    "yes",    "yes"),
    "read-roster":  ("yes",    "yes",    "yes",    "no"),
    "manage-roster": ("no",    "yes",    "yes",    "no"),
    "enrol":        ("no",     "no",     "no",     "yes"),
}
ROLE_COLUMNS = ("operator", "supervisor", "unit-head", "admin")
PERSON = {"operator": "omkar", "supervisor": "sunita", "unit-head": "uday", "admin": "anil"}

CELLS = [(Role(role), Action(action), row[i])
         for action, row in EXPECTED.items() for i, role in enumerate(ROLE_COLUMNS)]


def _own_batch(person: str, state: BatchState = BatchState.SCANNING) -> BatchFacts:
    """A batch the person opened and captured every page of (the page asked about included)."""
    return BatchFacts("B-7", state, captured_by=frozenset({person}), opened_by=person, page_captured_by=person)


def _clean_batch() -> BatchFacts:
    """A batch in which nobody of PERSON took part."""
    return BatchFacts("B-8", BatchState.VERIFIED, captured_by=frozenset({"kiran"}), verified_by=frozenset({"vimla"}),
                      approved_by="vimla", opened_by="kiran", page_captured_by="kiran")


def test_the_expected_table_covers_every_role_and_action() -> None:
    assert set(EXPECTED) == {a.value for a in Action}
    assert set(ROLE_COLUMNS) == {r.value for r in Role}
    assert len(CELLS) == len(Action) * len(Role)


@pytest.mark.parametrize(("role", "action", "cell"), CELLS, ids=[f"{r.value}-{a.value}" for r, a, _ in CELLS])
def test_every_cell(role: Role, action: Action, cell: str) -> None:
    person = PERSON[role.value]
    assert allowed(role, action) is (cell != "no")
    assert (action in allowed_actions(role)) is (cell != "no")
    if cell == "no":
        # refused whatever the facts, even a batch entirely of the person's own making
        for facts in (None, _own_batch(person), _clean_batch()):
            with pytest.raises(PermissionDenied) as refused:
                check(person, role, action, facts)
            assert f"the {role.value} role does not allow '{action.value}'" in str(refused.value)
    elif cell == "yes":
        check(person, role, action)
        check(person, role, action, _clean_batch())
    elif cell == "own":
        check(person, role, action, _own_batch(person))
        for facts in (None, _own_batch(person, BatchState.VERIFIED), _own_batch(person, BatchState.SEALED),
                      _clean_batch(), _own_batch("kiran")):
            with pytest.raises(PermissionDenied):
                check(person, role, action, facts)
    else:
        assert cell == "4e"
        check(person, role, action, _clean_batch())
        with pytest.raises(PermissionDenied, match="no batch was named"):
            check(person, role, action)  # fail closed: the four-eyes rule needs the batch's facts


def test_unlock_follows_the_key_slots() -> None:
    for role in Role:
        assert allowed(role, Action.UNLOCK) is role.may_unlock


def test_the_admin_never_sees_a_page_nor_the_sealed_personal_fields() -> None:
    assert not allowed(Role.ADMIN, Action.VIEW_PAGE)
    assert not sees_personal_fields(Role.ADMIN)
    assert not sees_personal_fields(Role.OPERATOR)
    assert sees_personal_fields(Role.SUPERVISOR) and sees_personal_fields(Role.UNIT_HEAD)


# --- the operator's own-batch rules --------------------------------------------------------------

def test_operator_sees_only_the_pages_they_captured_of_a_batch_in_capture() -> None:
    mine = BatchFacts("B-1", BatchState.SCANNING, captured_by=frozenset({"omkar", "kiran"}), opened_by="omkar",
                      page_captured_by="omkar")
    check("omkar", Role.OPERATOR, Action.VIEW_PAGE, mine)
    theirs = BatchFacts("B-1", BatchState.SCANNING, captured_by=frozenset({"omkar", "kiran"}), opened_by="omkar",
                        page_captured_by="kiran")
    with pytest.raises(PermissionDenied, match="they did not capture this page"):
        check("omkar", Role.OPERATOR, Action.VIEW_PAGE, theirs)
    closed = BatchFacts("B-1", BatchState.VERIFIED, captured_by=frozenset({"omkar"}), opened_by="omkar",
                        page_captured_by="omkar")
    with pytest.raises(PermissionDenied, match="the batch is verified, no longer in capture"):
        check("omkar", Role.OPERATOR, Action.VIEW_PAGE, closed)


def test_operator_indexes_and_closes_a_batch_they_opened_before_any_page() -> None:
    empty = BatchFacts("B-2", BatchState.SCANNING, opened_by="omkar")
    check("omkar", Role.OPERATOR, Action.INDEX, empty)
    check("omkar", Role.OPERATOR, Action.CLOSE_BATCH, empty)
    with pytest.raises(PermissionDenied, match="it is not their batch"):
        check("kiran", Role.OPERATOR, Action.CLOSE_BATCH, empty)


def test_the_four_eyes_rule_does_not_bar_scanning() -> None:
    verified_by_them = BatchFacts("B-3", BatchState.SCANNING, verified_by=frozenset({"sunita"}))
    check("sunita", Role.SUPERVISOR, Action.SCAN, verified_by_them)


# --- four eyes ------------------------------------------------------------------------------------

def _batch(**kwargs: object) -> BatchFacts:
    return BatchFacts("B-1", BatchState.VERIFIED, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("action", [Action.VERIFY, Action.APPROVE, Action.RETURN])
def test_who_captured_may_not_verify_approve_or_return(action: Action) -> None:
    facts = _batch(captured_by=frozenset({"omkar", "anita"}))
    with pytest.raises(PermissionDenied) as refused:
        check("anita", Role.SUPERVISOR, action, facts)
    assert "they captured pages of it" in str(refused.value)
    check("sunita", Role.SUPERVISOR, action, facts)  # someone else may


def test_the_four_eyes_names_compare_without_case() -> None:
    with pytest.raises(PermissionDenied):
        check("Anita", Role.SUPERVISOR, Action.VERIFY, _batch(captured_by=frozenset({"anita"})))
    with pytest.raises(PermissionDenied):
        check("uday", Role.UNIT_HEAD, Action.SIGN_OFF, _batch(verified_by=frozenset({"UDAY"})))


@pytest.mark.parametrize(("facts", "why"), [
    ({"verified_by": frozenset({"sunita", "uday"})}, "they verified it"),
    ({"approved_by": "uday"}, "they approved it"),
    ({"captured_by": frozenset({"uday"})}, "they captured pages of it"),
])
def test_who_verified_approved_or_captured_may_not_sign_off(facts: dict[str, object], why: str) -> None:
    batch = _batch(**facts)
    with pytest.raises(PermissionDenied) as refused:
        check("uday", Role.UNIT_HEAD, Action.SIGN_OFF, batch)
    assert why in str(refused.value)
    check("usha", Role.UNIT_HEAD, Action.SIGN_OFF, batch)  # another unit head may


def test_a_unit_head_who_captured_may_not_return_it() -> None:
    with pytest.raises(PermissionDenied):
        check("uday", Role.UNIT_HEAD, Action.RETURN, _batch(captured_by=frozenset({"uday"})))
    others = _batch(captured_by=frozenset({"omkar"}), verified_by=frozenset({"sunita"}))
    check("uday", Role.UNIT_HEAD, Action.RETURN, others)


def test_the_supervisor_who_verified_may_approve() -> None:
    verified = _batch(captured_by=frozenset({"omkar"}), verified_by=frozenset({"sunita"}))
    check("sunita", Role.SUPERVISOR, Action.APPROVE, verified)


# --- the refusal --------------------------------------------------------------------------------

def test_a_role_refusal_names_the_person_role_and_action_with_exit_22() -> None:
    with pytest.raises(PermissionDenied) as refused:
        check("omkar", Role.OPERATOR, Action.APPROVE, _batch())
    text = str(refused.value)
    assert text.startswith("omkar (operator) may not approve batch B-1:")
    assert "'approve'" in text
    assert refused.value.exit_code == 22


def test_a_four_eyes_refusal_names_the_person_role_action_batch_and_why() -> None:
    with pytest.raises(PermissionDenied) as refused:
        check("anita", Role.SUPERVISOR, Action.VERIFY, _batch(captured_by=frozenset({"anita"})))
    text = str(refused.value)
    assert text.startswith("anita (supervisor) may not verify batch B-1: they captured pages of it")
    assert "'verify'" in text and "four-eyes" in text
    assert refused.value.exit_code == 22
    with pytest.raises(PermissionDenied) as refused:
        check("uday", Role.UNIT_HEAD, Action.SIGN_OFF, _batch(verified_by=frozenset({"uday"})))
    assert str(refused.value).startswith("uday (unit-head) may not sign off batch B-1: they verified it")
    assert "'sign-off'" in str(refused.value)


def test_refusals_use_no_gendered_pronoun() -> None:
    texts = []
    for role, action, _cell in CELLS:
        for facts in (None, _batch(captured_by=frozenset(PERSON.values()), verified_by=frozenset(PERSON.values()),
                                   approved_by="uday")):
            try:
                check(PERSON[role.value], role, action, facts)
            except PermissionDenied as e:
                texts.append(f" {e} ".lower())
    assert texts
    for text in texts:
        for pronoun in (" she ", " he ", " her ", " his ", " him "):
            assert pronoun not in text, text


def test_station_actions_name_no_batch() -> None:
    with pytest.raises(PermissionDenied) as refused:
        check("anil", Role.ADMIN, Action.UNLOCK, _batch())
    assert str(refused.value) == "anil (admin) may not unlock the station: the admin role does not allow 'unlock'"


def test_batch_facts_refuse_a_single_name_for_a_set() -> None:
    with pytest.raises(TypeError):
        BatchFacts("B-1", BatchState.SCANNING, captured_by="anita")  # type: ignore[arg-type]
    facts = BatchFacts("B-1", BatchState.SCANNING, captured_by=["anita"])  # type: ignore[arg-type]
    assert facts.captured_by == frozenset({"anita"})


# --- the Markdown table ----------------------------------------------------------------------------

def test_markdown_lists_every_action_and_role() -> None:
    text = matrix_markdown()
    header = text.splitlines()[0]
    for role in Role:
        assert f" {role.value} |" in header
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| action")]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == [a.value for a in Action]
    for row, (action, expected) in zip(rows, EXPECTED.items(), strict=True):
        cells = [c.strip() for c in row.strip("|").split("|")][1:1 + len(Role)]
        assert [c != "no" for c in cells] == [e != "no" for e in expected], action


def test_the_docs_carry_the_current_matrix() -> None:
    doc = (ROOT / "docs" / "permissions.md").read_text(encoding="utf-8")
    assert matrix_markdown() in doc, "docs/permissions.md is stale: paste matrix_markdown() into it"
