"""The unit head's DSC sign-off end to end, with real parts: SoftHSM2 tokens (RSA 2048 and ECDSA P-256) made
by the tests, a test CA made with ``cryptography``, the CLI, pyHanko's validation of the signed sheet against
the test root, and ``openssl cms -verify`` of the manifest's CMS signature."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from scanstation_tools.synth import PageSpec, render_acr_page
from tests.dsckit import PIN, SoftHsm, TestCA, Token, make_ca, require_softhsm, softhsm_conf
from tests.stationkit import StationEnv, make_station


@dataclass
class Pki:
    ca: TestCA
    other: TestCA
    hsm: SoftHsm
    root_pem: Path
    tokens: dict[str, Token]
    certs: dict[str, Path]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    require_softhsm()
    root = tmp_path_factory.mktemp("pki")
    hsm = SoftHsm(root / "softhsm")
    ca, other = make_ca("Test CCA"), make_ca("Other CA")
    now = dt.datetime.now(dt.UTC)
    signers = {
        "rsa": ca.issue("Unit Head RSA", kind="rsa"),
        "p256": ca.issue("Unit Head P256", kind="p256"),
        "other": other.issue("Unit Head Other CA", kind="rsa"),
        "expired": ca.issue("Unit Head Expired", kind="rsa", not_before=now - dt.timedelta(days=400),
                            not_after=now - dt.timedelta(days=1)),
        "nousage": ca.issue("Unit Head Encryption Only", kind="rsa", digital_signature=False,
                            non_repudiation=False, key_encipherment=True),
        "unbound": ca.issue("Someone Else", kind="p256"),
        "pin": ca.issue("Unit Head PIN", kind="p256"),
    }
    tokens = {name: hsm.token(s, label=f"dsc-{name}") for name, s in signers.items()}
    # a token that carries no CA certificate: the intermediate comes from the station's trust bundle
    signers["nochain"] = ca.issue("Unit Head No Chain", kind="rsa")
    tokens["nochain"] = hsm.token(signers["nochain"], label="dsc-nochain", extra_certs=False)
    certs = {name: s.write_pem(root / f"{name}.pem") for name, s in signers.items()}
    with softhsm_conf(hsm):  # the in-process tests load the module with this configuration
        yield Pki(ca, other, hsm, ca.root_pem(root / "root.pem"), tokens, certs)


def use_token(st: StationEnv, token: Token) -> None:
    text = st.config.read_text()
    text = re.sub(r'(?m)^token_label = ".*"$', f'token_label = "{token.label}"', text)
    text = re.sub(r'(?m)^key_label = ".*"$', f'key_label = "{token.key_label}"', text)
    st.config.write_text(text)


def pin_file(path: Path, pin: str = PIN, mode: int = 0o600) -> Path:
    path.write_text(pin + "\n")
    path.chmod(mode)
    return path


@pytest.fixture(scope="module")
def station(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> StationEnv:
    tmp = tmp_path_factory.mktemp("signoff")
    st = make_station(tmp / "st", signoff=True, extra_env=pki.hsm.env,
                      extra_config=pki.hsm.station_config(pki.tokens["rsa"], pki.root_pem))
    st.env["SCANSTATION_PIN_FILE"] = str(pin_file(tmp / "pin.txt"))
    st.run("users", "certificate", "head", str(pki.certs["rsa"]), check=True)
    st.roster("E100", "E200", "E300", "E400", names={"E100": "राम कुमार", "E200": "सीता देवी"})
    return st


def scan_and_verify(st: StationEnv, tmp: Path, batch: str, employee: str, seed: int, period: str = "2019-20") -> None:
    page = tmp / f"{batch}.png"
    render_acr_page(PageSpec(seed=seed, page_no=1, dpi=100)).image.save(page)
    st.run("import", "--batch", batch, "--employee", employee, "--period", period, str(page), check=True)
    st.verify(batch)


def batch_state(st: StationEnv, batch: str) -> str:
    status = json.loads(st.run("status", "--batch", batch, "--json", "--user", "head", check=True).stdout)
    return str(status["batches"][0]["state"])


def outbox(st: StationEnv) -> list[Path]:
    return sorted((st.data_dir / "outbox").glob("*.pkg")) if (st.data_dir / "outbox").is_dir() else []


def open_package(st: StationEnv, path: Path) -> tuple[bytes, dict[str, Any], dict[str, bytes], dict[str, Any]]:
    """(manifest bytes, manifest, object id -> plaintext, signatures), verified by the format's reader."""
    from batchformat import verify_package

    identity = pyrage.x25519.Identity.from_str(st.portal_identity_file.read_text().strip())
    objects: dict[str, bytes] = {}
    pkg = verify_package(path, [identity], on_object=lambda entry, data: objects.__setitem__(entry["id"], data))
    return pkg.manifest_bytes, pkg.manifest, objects, pkg.signatures


def check_cms_with_openssl(tmp: Path, manifest: bytes, member: dict[str, Any], root: Path) -> None:
    sig = tmp / "unit-head.der"
    sig.write_bytes(base64.b64decode(member["cms"]))
    content = tmp / "manifest.json"
    content.write_bytes(manifest)
    proc = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(sig), "-content",
                           str(content), "-CAfile", str(root), "-purpose", "any", "-out", os.devnull],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Verification successful" in proc.stderr
    # altered manifest: openssl refuses
    content.write_bytes(manifest.replace(b'"signoff"', b'"signoff" ', 1))
    bad = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(sig), "-content",
                          str(content), "-CAfile", str(root), "-purpose", "any", "-out", os.devnull],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0


def check_sheet(sheet: bytes, root_pem: Path) -> None:
    from asn1crypto import pem as asn1_pem
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    from tests.test_pdf import pdfa_structural_problems

    _kind, _headers, der = asn1_pem.unarmor(root_pem.read_bytes())
    reader = PdfFileReader(io.BytesIO(sheet))
    assert len(reader.embedded_signatures) == 1
    status = validate_pdf_signature(reader.embedded_signatures[0],
                                    ValidationContext(trust_roots=[asn1_x509.Certificate.load(der)]))
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.coverage is not None and "ENTIRE_FILE" in str(status.coverage)
    assert pdfa_structural_problems(sheet) == []
    try:
        import pikepdf.pdfa as pdfa  # the allow-list validator of pikepdf[pdfa], when installed
    except ImportError:
        return
    # The sheet as drawn (its first revision) passes the allow-list validator; the signed file adds only the
    # signature's form field, which that validator does not cover (it reports interactive forms "unsupported",
    # not as a violation): nothing else may be found.
    first = sheet[:sheet.index(b"%%EOF") + len(b"%%EOF")] + b"\n"
    assert pdfa.validate_written(io.BytesIO(first), "2b").passed
    report = pdfa.validate_written(io.BytesIO(sheet), "2b")
    problems = [f for f in report.findings if not (f.kind == "unsupported" and "/AcroForm" in f.where + f.message)]
    assert problems == [], report


def signoff_ok(st: StationEnv, pki: Pki, tmp: Path, batch: str) -> None:
    assert batch_state(st, batch) == "verified"
    refused = st.run("seal", "--batch", batch)
    assert refused.returncode == 7 and "scanstation signoff" in refused.stderr, refused.stderr
    proc = st.run("signoff", "--batch", batch)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.index(f"batch {batch} (verified)") < out.index("signed off by")  # the summary first
    assert "E100" in out or "E200" in out or "E300" in out
    assert PIN not in out and PIN not in proc.stderr
    assert batch_state(st, batch) == "sealed"
    pkg = Path(re.search(r"^package (\S+) ", out, re.M).group(1))  # type: ignore[union-attr]
    manifest_bytes, manifest, objects, signatures = open_package(st, pkg)
    block = manifest["signoff"]
    assert block["unit_head"] == "head" and block["signed_at"].endswith("Z")
    member = signatures["signatures/unit-head.json"]
    assert member["format"] == "cms-detached-1" and member["signer"] == "unit-head"
    assert member["certificate_sha256"] == block["signer"]["certificate_sha256"]
    kinds = {o["id"]: o["kind"] for o in manifest["objects"]}
    assert kinds[block["sheet"]] == "signoff_sheet"
    check_cms_with_openssl(tmp, manifest_bytes, member, pki.root_pem)
    check_sheet(objects[block["sheet"]], pki.root_pem)
    audit = st.run("audit", "show", "--json", "--user", "head", check=True).stdout
    assert PIN not in audit
    assert "batch.signoff" in audit


def test_rsa_token_signs_off_a_verified_batch(station: StationEnv, pki: Pki, tmp_path: Path) -> None:
    scan_and_verify(station, tmp_path, "B-RSA", "E100", 11)
    signoff_ok(station, pki, tmp_path, "B-RSA")


def test_p256_token_signs_off_a_verified_batch(station: StationEnv, pki: Pki, tmp_path: Path) -> None:
    use_token(station, pki.tokens["p256"])
    station.run("users", "certificate", "head", str(pki.certs["p256"]), check=True)
    try:
        scan_and_verify(station, tmp_path, "B-P256", "E200", 12)
        signoff_ok(station, pki, tmp_path, "B-P256")
        # a signed-off batch opens back only by a new verification
        unseal = station.run("unseal", "--batch", "B-P256")
        assert unseal.returncode == 0, unseal.stderr
        assert batch_state(station, "B-P256") == "in-verification"
    finally:
        use_token(station, pki.tokens["rsa"])
        station.run("users", "certificate", "head", str(pki.certs["rsa"]), check=True)


@pytest.fixture(scope="module")
def refused_batch(station: StationEnv, tmp_path_factory: pytest.TempPathFactory) -> str:
    scan_and_verify(station, tmp_path_factory.mktemp("ref"), "B-REF", "E300", 13)
    return "B-REF"


def _refused(st: StationEnv, batch: str, code: int, *needles: str, user: str = "head") -> str:
    before = outbox(st)
    proc = st.run("signoff", "--batch", batch, "--user", user)
    assert proc.returncode == code, proc.stdout + proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    assert PIN not in proc.stdout + proc.stderr
    assert outbox(st) == before and batch_state(st, batch) == "verified"
    return proc.stderr


@pytest.mark.parametrize(("token", "check"), [
    ("other", "chain check"),
    ("expired", "validity check"),
    ("nousage", "key usage check"),
    ("unbound", "binding check"),
])
def test_refused_signers(station: StationEnv, pki: Pki, refused_batch: str, token: str, check: str) -> None:
    use_token(station, pki.tokens[token])
    if token != "unbound":  # bound, so that the check named is the one refusing
        station.run("users", "certificate", "head", str(pki.certs[token]), check=True)
    try:
        _refused(station, refused_batch, 31, check)
    finally:
        use_token(station, pki.tokens["rsa"])
        station.run("users", "certificate", "head", str(pki.certs["rsa"]), check=True)


def test_wrong_pin_says_what_the_token_reports(station: StationEnv, pki: Pki, refused_batch: str,
                                               tmp_path: Path) -> None:
    use_token(station, pki.tokens["pin"])
    station.run("users", "certificate", "head", str(pki.certs["pin"]), check=True)
    good = station.env["SCANSTATION_PIN_FILE"]
    station.env["SCANSTATION_PIN_FILE"] = str(pin_file(tmp_path / "wrong.txt", "999999"))
    try:
        err = _refused(station, refused_batch, 30, "wrong PIN")
        assert "999999" not in err
        # SoftHSM2 sets CKF_USER_PIN_COUNT_LOW after a failed log-in (it never locks): the message says so
        err = _refused(station, refused_batch, 30, "few tries left")
        audit = station.run("audit", "show", "--json", "--user", "head", check=True).stdout
        assert "signoff.failed" in audit and "999999" not in audit
    finally:
        station.env["SCANSTATION_PIN_FILE"] = good
        use_token(station, pki.tokens["rsa"])
        station.run("users", "certificate", "head", str(pki.certs["rsa"]), check=True)


def test_pin_flags_messages() -> None:
    from pkcs11 import TokenFlag

    from scanstation.signoff.token import pin_refusal

    assert "few tries left" in pin_refusal(int(TokenFlag.USER_PIN_COUNT_LOW))
    assert "final try" in pin_refusal(int(TokenFlag.USER_PIN_COUNT_LOW | TokenFlag.USER_PIN_FINAL_TRY))
    assert "PIN locked" in pin_refusal(int(TokenFlag.USER_PIN_LOCKED))
    assert "PIN locked" in pin_refusal(0, locked=True)
    assert "does not say" in pin_refusal(0)


def test_pin_file_open_to_others_is_refused(station: StationEnv, refused_batch: str, tmp_path: Path) -> None:
    good = station.env["SCANSTATION_PIN_FILE"]
    station.env["SCANSTATION_PIN_FILE"] = str(pin_file(tmp_path / "open.txt", mode=0o644))
    try:
        _refused(station, refused_batch, 30, "0644", "0600")
    finally:
        station.env["SCANSTATION_PIN_FILE"] = good


def test_only_the_unit_head_signs_off(station: StationEnv, refused_batch: str) -> None:
    _refused(station, refused_batch, 22, "may not sign off", user="sup2")
    _refused(station, refused_batch, 22, "may not sign off", user="admin")


def test_token_failing_between_the_two_signatures_leaves_the_batch_verified(
        station: StationEnv, pki: Pki, refused_batch: str) -> None:
    """The token's library finalised (as when the token is pulled out) after the sheet is signed and before the
    manifest's CMS: nothing is sealed, the sheet is gone, the batch stays verified; the next try signs."""
    import pkcs11

    from scanstation.errors import TokenError
    from scanstation.facade import Station
    from scanstation.people.accounts import People
    from scanstation.signoff.flow import signoff

    config, key = station.unlock()
    people = People(config.data_dir / "people.db")
    try:
        with Station(config, key) as st:
            sheets_before = {o.id for o in st.store.objects() if o.kind == "signoff_sheet"}
            files_before = set((config.data_dir / "vault").rglob("*.age"))
            steps: list[str] = []

            def pull_token(kind: str, data: dict[str, Any]) -> None:
                steps.append(kind)
                if kind == "package":
                    pkcs11.lib(config.signoff.pkcs11_module).finalize()

            with pytest.raises(TokenError, match="nothing was signed"):
                signoff(st, refused_batch, "head", PIN, people=people, progress=pull_token)
            assert steps == ["token", "certificate", "sheet", "package"]
            batch = st.store.batch(refused_batch)
            assert batch is not None and batch.state.value == "verified"
            assert st.store.package(batch.id) is None
            assert {o.id for o in st.store.objects() if o.kind == "signoff_sheet"} == sheets_before
            assert set((config.data_dir / "vault").rglob("*.age")) - files_before == set()
            result = signoff(st, refused_batch, "head", PIN, people=people)
            assert st.store.batch(refused_batch).state.value == "sealed"  # type: ignore[union-attr]
            assert Path(result.package).is_file()
    finally:
        people.close()


def test_binding_certificates_to_unit_heads_only(station: StationEnv, pki: Pki, tmp_path: Path) -> None:
    added = station.run("users", "add", "head2", "--role", "unit-head", "--certificate", str(pki.certs["p256"]))
    assert added.returncode == 0, added.stderr
    assert "certificate bound to head2" in added.stdout and "Unit Head P256" in added.stdout
    refused = station.run("users", "add", "op2", "--role", "operator", "--certificate", str(pki.certs["p256"]))
    assert refused.returncode == 7 and "only a unit head" in refused.stderr
    assert "op2" not in station.run("users", "list", check=True).stdout
    refused = station.run("users", "certificate", "sup", str(pki.certs["p256"]))
    assert refused.returncode == 7 and "only a unit head" in refused.stderr
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    refused = station.run("users", "certificate", "head2", str(junk))
    assert refused.returncode == 7 and "not an X.509 certificate" in refused.stderr
    audit = station.run("audit", "show", "--json", "--user", "head", check=True).stdout
    assert "user.certificate" in audit


def test_signoff_through_the_running_service(station: StationEnv, pki: Pki, tmp_path: Path) -> None:
    """The kiosk's path: ``signoff_summary`` and ``signoff`` over the service's socket, with progress events."""
    from scanstation.config import load_config
    from scanstation.errors import TokenError
    from scanstation.service.client import RemoteConnection
    from tests.stationkit import PASSWORD

    scan_and_verify(station, tmp_path, "B-SVC", "E400", 14)
    with station.serve(), RemoteConnection(load_config(station.config).socket_path) as conn:
        conn.token = conn.call("sign_in", name="head", password=PASSWORD)["token"]
        summary = conn.call("signoff_summary", batch="B-SVC")
        assert summary["state"] == "verified" and summary["files"][0]["employee_code"] == "E400"
        assert summary["verified_by"] == ["sup2"] and summary["approved_by"] == "sup2"
        with pytest.raises(TokenError, match="wrong PIN"):
            conn.call("signoff", batch="B-SVC", pin="000000")
        events: list[str] = []
        result = conn.call("signoff", on_event=lambda kind, data: events.append(kind), batch="B-SVC", pin=PIN)
        assert events == ["token", "certificate", "sheet", "package"]
        assert result["signer_subject"].startswith("CN=Unit Head RSA") and Path(result["package"]).is_file()
        conn.call("sign_out")
    assert batch_state(station, "B-SVC") == "sealed"


def test_pades_b_t_with_a_timestamp_authority(station: StationEnv, pki: Pki, tmp_path: Path) -> None:
    """``[signoff] tsa_url``: the sheet's signature carries an RFC 3161 signature timestamp (PAdES B-T)."""
    from asn1crypto import pem as asn1_pem
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    from tests.dsckit import TsaServer, issue_tsa

    tsa = TsaServer(issue_tsa(pki.ca))
    original = station.config.read_text()
    station.config.write_text(original.replace("[signoff]\n", f'[signoff]\ntsa_url = "{tsa.url}"\n', 1))
    try:
        scan_and_verify(station, tmp_path, "B-TSA", "E100", 15, period="2020-21")  # B-RSA filed E100 2019-20
        proc = station.run("signoff", "--batch", "B-TSA")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert tsa.requests >= 1  # pyHanko may ask once more to size the signature
        pkg = Path(re.search(r"^package (\S+) ", proc.stdout, re.M).group(1))  # type: ignore[union-attr]
        _m, manifest, objects, _s = open_package(station, pkg)
        sheet = objects[manifest["signoff"]["sheet"]]
        _kind, _headers, der = asn1_pem.unarmor(pki.root_pem.read_bytes())
        context = ValidationContext(trust_roots=[asn1_x509.Certificate.load(der)])
        status = validate_pdf_signature(PdfFileReader(io.BytesIO(sheet)).embedded_signatures[0], context,
                                        ts_validation_context=context)
        assert status.bottom_line, status.pretty_print_details()
        assert status.timestamp_validity is not None and status.timestamp_validity.trusted
    finally:
        station.config.write_text(original)
        tsa.close()


def test_token_errors_name_what_is_missing(pki: Pki) -> None:
    """open_token straight on the SoftHSM2 module: each failure names what is missing; the serial selects too."""
    import pkcs11

    from scanstation.config import SignoffSection
    from scanstation.errors import TokenError
    from scanstation.signoff.token import open_token

    token = pki.tokens["p256"]
    base = {"pkcs11_module": pki.hsm.module, "token_label": token.label, "key_label": token.key_label}

    def refused(pattern: str, pin: str = PIN, **cfg: str) -> str:
        with pytest.raises(TokenError, match=pattern) as e:
            open_token(SignoffSection(**{**base, **cfg}), pin).__enter__()
        return str(e.value)

    refused("no DSC token library is configured", pkcs11_module="")
    refused("does not exist", pkcs11_module="/nonexistent/libvendor.so")
    refused(r"label 'no-such-token' is not present.*dsc-p256", token_label="no-such-token")
    refused("no signing key labelled 'nope'", key_label="nope")
    refused("tokens are present", token_label="", key_label="")  # several tokens, none named
    assert "13572468" not in refused("wrong PIN", pin="13572468")
    lib = pkcs11.lib(pki.hsm.module)
    serial = lib.get_token(token_label=token.label).serial.decode().strip()
    with open_token(SignoffSection(pkcs11_module=pki.hsm.module, token_serial=serial), PIN) as opened:
        assert opened.label == token.label and opened.key_label == token.key_label  # the only signing key
        assert "Unit Head P256" in opened.certificate.subject.human_friendly
        assert [c.dump() for c in opened.others] == [pki.ca.inter.public_bytes(Encoding.DER)]


def test_intermediate_from_the_trust_bundle_is_carried(station: StationEnv, pki: Pki, tmp_path: Path) -> None:
    """A token without its CA certificates, a trust bundle with the root and the sub-CA: the CMS and the sheet
    carry the sub-CA, so a verifier holding only the root (openssl -CAfile root.pem, pyHanko) verifies them."""
    from cryptography.hazmat.primitives.serialization import Encoding as Enc

    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pki.ca.root.public_bytes(Enc.PEM) + pki.ca.inter.public_bytes(Enc.PEM))
    original = station.config.read_text()
    station.config.write_text(original.replace(f'trust_roots = "{pki.root_pem}"', f'trust_roots = "{bundle}"'))
    use_token(station, pki.tokens["nochain"])
    station.run("users", "certificate", "head", str(pki.certs["nochain"]), check=True)
    try:
        scan_and_verify(station, tmp_path, "B-CHAIN", "E200", 16, period="2021-22")
        proc = station.run("signoff", "--batch", "B-CHAIN")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        pkg = Path(re.search(r"^package (\S+) ", proc.stdout, re.M).group(1))  # type: ignore[union-attr]
        manifest_bytes, manifest, objects, signatures = open_package(station, pkg)
        check_cms_with_openssl(tmp_path, manifest_bytes, signatures["signatures/unit-head.json"], pki.root_pem)
        check_sheet(objects[manifest["signoff"]["sheet"]], pki.root_pem)
    finally:
        station.config.write_text(original)
        use_token(station, pki.tokens["rsa"])
        station.run("users", "certificate", "head", str(pki.certs["rsa"]), check=True)
