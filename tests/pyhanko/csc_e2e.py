#!/usr/bin/env python3
"""End-to-end test: pyHanko's CSC client signs PDFs on a running csc-server.

    python csc_e2e.py --base-url URL --token TOKEN --pin PIN [--otp CODE] --ca CA.der --out DIR \
        --scenario NAME --credential ID [--batch N]
    python csc_e2e.py --ca CA.der --validate SIGNED.pdf [SIGNED.pdf ...]

Scenarios:
  rsa-pkcs1    CSCSigner defaults on an RSA credential (sha256WithRSAEncryption)
  rsa-pss      the same with prefer_pss=True (RSASSA-PSS, pyHanko's maximum salt length)
  ec-p256      an EC P-256 credential (ecdsa-with-SHA256, DER signature values)
  scal2-batch  a SCAL 2 credential, batch_size=N and N concurrent async_sign_pdf calls on N
               different PDFs: exactly one credentials/authorize (numSignatures N, the N hashes)
               and one signatures/signHash with those N hashes. SCAL 2 takes two factors: the
               PIN and an OTP (--otp; the test has the server send an online one)
  pades-bt     an EC P-256 credential at PAdES B-T: the signature through the CSC API, its
               signature time-stamp from the same server's RFC 3161 endpoint (BASE_URL/tsa,
               pyHanko's HTTPTimeStamper); the validator must find the time-stamp token intact,
               valid and trusted too (the TSA certificate, included in the token, chains to the
               CA given), and its TSA named CN=... TSA

The input PDFs are made here. Every signed PDF is validated with pyHanko's validator against the
given CA certificate (--ca: the dev CA, or the operator's CA of a credential made with
`credential create --csr`) as the only trust root (no fetching): it must be intact, valid and trusted
(bottom_line), cover the whole file, and be signed by CN=alice. One JSON line per PDF
(`"kind": "pdf"`) and a last line about the HTTP exchanges (`"kind": "requests"`) go to standard
output; every exchange is also written to DIR/requests.jsonl (PIN and SAD redacted). Exits 1 on any
failure, with the reason on standard error and in the JSON.

--validate only validates PDFs signed earlier (e.g. before their credential was revoked), with the
same checks and the same JSON line per PDF (`"kind": "pdf"`, `"scenario": "validate"`), nothing
signed and no server contacted; each line also gives the signer certificate's serial number
(`signer_serial`, lowercase hex).
"""

import argparse
import asyncio
import base64
import json
import sys
import traceback
from io import BytesIO
from pathlib import Path

import aiohttp
from asn1crypto import pem, x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign import fields, signers, timestamps
from pyhanko.sign.signers import csc_signer
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

# scenario -> (prefer_pss, the signAlgo pyHanko must send, hash pinning (SCAL 2) expected)
SCENARIOS = {
    "rsa-pkcs1": (False, "1.2.840.113549.1.1.11", None),
    "rsa-pss": (True, "1.2.840.113549.1.1.10", None),
    "ec-p256": (False, "1.2.840.10045.4.3.2", None),
    "scal2-batch": (False, "1.2.840.113549.1.1.11", True),
    "pades-bt": (False, "1.2.840.10045.4.3.2", None),
}
# the scenarios whose signatures carry a signature time-stamp from the server's /tsa
TIMESTAMPED = {"pades-bt"}
SHA256 = "2.16.840.1.101.3.4.2.1"
EXPECTED_SIGNER_CN = "alice"


class Failure(Exception):
    pass


class Recorder:
    """An aiohttp client middleware that records every request and its response."""

    def __init__(self):
        self.exchanges = []

    async def __call__(self, req, handler):
        entry = {"method": req.method, "path": req.url.path}
        entry["authorization"] = (req.headers.get("Authorization") or "").split(" ")[0] or None
        try:
            entry["request"] = json.loads(req.body.decode()) if req.body else None
        except Exception:  # not JSON: keep it visible, but short
            entry["request"] = repr(req.body)[:200]
        self.exchanges.append(entry)
        resp = await handler(req)
        entry["status"] = resp.status
        try:
            entry["response"] = await resp.json(content_type=None)
        except Exception:
            entry["response"] = (await resp.text())[:500]
        return resp

    def calls(self, path_suffix):
        return [e for e in self.exchanges if e["path"].endswith(path_suffix)]

    def redacted(self):
        return [redact(e) for e in self.exchanges]


def redact(v):
    """PIN, OTP and SAD hidden, long strings (certificates, signatures) shortened."""
    if isinstance(v, str) and len(v) > 80:
        return v[:40] + f"...({len(v)} chars)"
    if isinstance(v, list):
        return [redact(x) for x in v]
    if isinstance(v, dict):
        return {k: ("***" if k in ("PIN", "OTP", "SAD") else redact(x)) for k, x in v.items()}
    return v


class AuthManager(csc_signer.CSCAuthorizationManager):
    """Calls credentials/authorize with the PIN (and OTP) and the hashes of the batch, and counts the calls."""

    def __init__(self, session, session_info, credential_info, pin, otp=None):
        super().__init__(session_info, credential_info)
        self.session = session
        self.pin = pin
        self.otp = otp
        self.authorized = []  # the hash lists, one per credentials/authorize call

    async def authorize_signature(self, hash_b64s):
        self.authorized.append(list(hash_b64s))
        req = self.format_csc_auth_request(hash_b64s=hash_b64s, pin=self.pin, otp=self.otp)
        url = self.csc_session_info.endpoint_url("credentials/authorize")
        async with self.session.post(
            url,
            json=req,
            headers=self.auth_headers,
            raise_for_status=True,
            timeout=aiohttp.ClientTimeout(total=60),
        ) as resp:
            return self.parse_csc_auth_response(await resp.json())


def blank_pdf(label: str) -> bytes:
    """A one-page PDF whose content stream shows `label` (so every input differs)."""
    w = PdfFileWriter()
    text = label.replace("\\", "").replace("(", "").replace(")", "")
    content = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode("ascii")
    font = generic.DictionaryObject(
        {
            generic.pdf_name("/Type"): generic.pdf_name("/Font"),
            generic.pdf_name("/Subtype"): generic.pdf_name("/Type1"),
            generic.pdf_name("/BaseFont"): generic.pdf_name("/Helvetica"),
        }
    )
    resources = generic.DictionaryObject(
        {
            generic.pdf_name("/Font"): generic.DictionaryObject(
                {generic.pdf_name("/F1"): w.add_object(font)}
            )
        }
    )
    stream = w.add_object(generic.StreamObject(stream_data=content))
    w.insert_page(PageObject(contents=stream, media_box=(0, 0, 595, 842), resources=resources))
    out = BytesIO()
    w.write(out)
    return out.getvalue()


def load_cert(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return x509.Certificate.load(data)


async def sign_one(signer, pdf: bytes, name: str, timestamper=None) -> bytes:
    w = IncrementalPdfFileWriter(BytesIO(pdf))
    if timestamper is None:
        meta = signers.PdfSignatureMetadata(field_name="Signature1", reason=f"csc_e2e {name}")
    else:
        # PAdES B-T: ETSI.CAdES.detached with a signature time-stamp (unsigned attribute)
        meta = signers.PdfSignatureMetadata(
            field_name="Signature1",
            reason=f"csc_e2e {name}",
            subfilter=fields.SigSeedSubFilter.PADES,
        )
    out = await signers.async_sign_pdf(w, meta, signer=signer, timestamper=timestamper)
    return out.getvalue()


async def validate(signed: bytes, ca: x509.Certificate) -> dict:
    reader = PdfFileReader(BytesIO(signed))
    sigs = reader.embedded_signatures
    if len(sigs) != 1:
        raise Failure(f"expected 1 embedded signature, found {len(sigs)}")
    vc = ValidationContext(trust_roots=[ca], allow_fetching=False)
    ts_vc = ValidationContext(trust_roots=[ca], allow_fetching=False)
    status = await async_validate_pdf_signature(
        sigs[0], signer_validation_context=vc, ts_validation_context=ts_vc
    )
    subject = status.signing_cert.subject.native
    ts = status.timestamp_validity
    timestamp = None
    if ts is not None:
        timestamp = {
            "intact": bool(ts.intact),
            "valid": bool(ts.valid),
            "trusted": bool(ts.trusted),
            "tsa": ts.signing_cert.subject.native.get("common_name"),
            "time": ts.timestamp.isoformat(),
            "md_algorithm": ts.md_algorithm,
            "trust_problem": str(ts.trust_problem_indic) if ts.trust_problem_indic else None,
        }
    return {
        "intact": bool(status.intact),
        "valid": bool(status.valid),
        "trusted": bool(status.trusted),
        "bottom_line": bool(status.bottom_line),
        "coverage": status.coverage.name if status.coverage is not None else None,
        "signer": subject.get("common_name"),
        "signer_serial": format(status.signing_cert.serial_number, "x"),
        "md_algorithm": status.md_algorithm,
        "mechanism": status.pkcs7_signature_mechanism,
        "trust_problem": str(status.trust_problem_indic) if status.trust_problem_indic else None,
        "subfilter": sigs[0].sig_object.get("/SubFilter"),
        "timestamp": timestamp,
    }


async def validate_into(line: dict, signed: bytes, ca: x509.Certificate, timestamped: bool):
    """Validates `signed` into `line`: its findings, `ok`, and the `reason` when not ok."""
    try:
        line.update(await validate(signed, ca))
        reasons = [f"not {k}" for k in ("intact", "valid", "trusted", "bottom_line") if not line[k]]
        if line["coverage"] != "ENTIRE_FILE":
            reasons.append(f"coverage {line['coverage']}")
        if line["signer"] != EXPECTED_SIGNER_CN:
            reasons.append(f"signer CN {line['signer']!r}, not {EXPECTED_SIGNER_CN!r}")
        if timestamped:
            ts = line["timestamp"]
            if ts is None:
                reasons.append("no signature time-stamp")
            else:
                reasons += [f"time-stamp not {k}" for k in ("intact", "valid", "trusted") if not ts[k]]
        line["ok"] = not reasons
        if reasons:
            line["reason"] = "validation: " + ", ".join(reasons)
    except Exception as e:
        line["ok"] = False
        line["reason"] = f"validation failed: {type(e).__name__}: {e}"
        traceback.print_exc()


async def validate_only(args) -> int:
    """--validate: the PDFs given, validated against --ca alone; one line each."""
    ca = load_cert(Path(args.ca))
    failures = []
    for path in map(Path, args.validate):
        line = {"kind": "pdf", "scenario": "validate", "pdf": str(path)}
        await validate_into(line, path.read_bytes(), ca, timestamped=False)
        if not line["ok"]:
            failures.append(f"{line['pdf']}: {line['reason']}")
        print(json.dumps(line), flush=True)
    if failures:
        for f in failures:
            print(f"FAIL: {f}", file=sys.stderr)
        print(json.dumps({"kind": "failures", "scenario": "validate", "failures": failures}))
        return 1
    return 0


async def run(args) -> int:
    prefer_pss, sign_algo, pinning = SCENARIOS[args.scenario]
    batch = args.batch if args.scenario == "scal2-batch" else 1
    if batch < 1:
        raise Failure("--batch must be at least 1")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    ca = load_cert(Path(args.ca))
    recorder = Recorder()
    failures = []
    lines = []
    try:
        async with aiohttp.ClientSession(middlewares=(recorder,)) as session:
            info = csc_signer.CSCServiceSessionInfo(
                args.base_url.rstrip("/"), args.credential, oauth_token=args.token
            )
            cred = await csc_signer.fetch_certs_in_csc_credential(session, info)
            if pinning is not None and cred.hash_pinning_required != pinning:
                failures.append(f"credential SCAL: hash pinning is {cred.hash_pinning_required}")
            if cred.max_batch_size < batch:
                failures.append(f"credential multisign {cred.max_batch_size} < batch {batch}")
            auth = AuthManager(session, info, cred, args.pin, args.otp)
            signer = csc_signer.CSCSigner(
                session, auth_manager=auth, prefer_pss=prefer_pss, batch_size=batch
            )
            timestamper = None
            if args.scenario in TIMESTAMPED:
                timestamper = timestamps.HTTPTimeStamper(args.base_url.rstrip("/") + "/tsa")
            names = [f"{args.scenario}-{i + 1}" for i in range(batch)]
            inputs = [blank_pdf(f"csc_e2e {n}") for n in names]
            signed = await asyncio.gather(
                *(sign_one(signer, pdf, n, timestamper) for pdf, n in zip(inputs, names)),
                return_exceptions=True,
            )
        for name, result in zip(names, signed):
            line = {"kind": "pdf", "scenario": args.scenario, "pdf": f"{name}.pdf"}
            if isinstance(result, BaseException):
                line["ok"] = False
                line["reason"] = f"signing failed: {type(result).__name__}: {result}"
                print("".join(traceback.format_exception(result)), file=sys.stderr)
            else:
                (out_dir / f"{name}.pdf").write_bytes(result)
                await validate_into(line, result, ca, args.scenario in TIMESTAMPED)
            if not line["ok"]:
                failures.append(f"{line['pdf']}: {line['reason']}")
            lines.append(line)

        # What went over the wire: one authorize and one signHash per batch, with the batch's
        # hashes, the expected algorithms, and the SAD of that authorization.
        authorizes = recorder.calls("/credentials/authorize")
        sign_hashes = recorder.calls("/signatures/signHash")
        summary = {
            "kind": "requests",
            "scenario": args.scenario,
            "authorize_calls": len(auth.authorized),
            "authorize_requests": len(authorizes),
            "sign_hash_requests": len(sign_hashes),
            "endpoints": [e["path"] for e in recorder.exchanges],
        }
        if len(auth.authorized) != 1 or len(authorizes) != 1:
            failures.append(
                f"expected exactly 1 credentials/authorize, got {len(auth.authorized)} "
                f"(on the wire: {len(authorizes)})"
            )
        if len(sign_hashes) != 1:
            failures.append(f"expected exactly 1 signatures/signHash, got {len(sign_hashes)}")
        if len(authorizes) == 1 and len(sign_hashes) == 1:
            a, s = authorizes[0], sign_hashes[0]
            areq, sreq = a["request"] or {}, s["request"] or {}
            summary["num_signatures"] = areq.get("numSignatures")
            summary["batch_hashes"] = len(sreq.get("hash") or [])
            summary["sign_algo"] = sreq.get("signAlgo")
            summary["hash_algo"] = sreq.get("hashAlgo")
            summary["sign_algo_params"] = sreq.get("signAlgoParams")
            if areq.get("numSignatures") != batch or len(areq.get("hash") or []) != batch:
                failures.append(f"authorize was not for {batch} hashes: {areq.get('numSignatures')}")
            if sorted(areq.get("hash") or []) != sorted(sreq.get("hash") or []):
                failures.append("signHash hashes differ from the authorized hashes")
            if len(sreq.get("hash") or []) != batch:
                failures.append(f"signHash carried {len(sreq.get('hash') or [])} hashes, not {batch}")
            if sreq.get("SAD") != (a.get("response") or {}).get("SAD"):
                failures.append("signHash did not use the SAD of the authorization")
            if sreq.get("signAlgo") != sign_algo:
                failures.append(f"signAlgo {sreq.get('signAlgo')}, expected {sign_algo}")
            if sreq.get("hashAlgo") != SHA256:
                failures.append(f"hashAlgo {sreq.get('hashAlgo')}, expected {SHA256}")
        bad = [e for e in recorder.exchanges if e.get("status") != 200]
        if bad:
            failures.append(f"HTTP errors: {json.dumps(redact(bad))}")
        lines.append(summary)
    finally:
        with open(out_dir / "requests.jsonl", "w") as f:
            for e in recorder.redacted():
                f.write(json.dumps(e) + "\n")

    for line in lines:
        print(json.dumps(line), flush=True)
    if failures:
        for f in failures:
            print(f"FAIL: {f}", file=sys.stderr)
        print(json.dumps({"kind": "failures", "scenario": args.scenario, "failures": failures}))
        return 1
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-url", help="the server's URL before /csc/v1")
    p.add_argument("--token", help="a bearer access token (auth/login)")
    p.add_argument("--pin")
    p.add_argument("--otp", help="the OTP, for a credential with two factors (SCAL 2)")
    p.add_argument("--ca", required=True, help="the trust root, DER or PEM")
    p.add_argument("--out", help="where the signed PDFs go")
    p.add_argument("--scenario", choices=sorted(SCENARIOS))
    p.add_argument("--credential", help="the credentialID")
    p.add_argument("--batch", type=int, default=3, help="signatures per authorization (scal2-batch)")
    p.add_argument("--validate", nargs="+", metavar="PDF", help="only validate these signed PDFs")
    args = p.parse_args()
    if args.validate:
        return asyncio.run(validate_only(args))
    missing = [
        f"--{k.replace('_', '-')}"
        for k in ("base_url", "token", "pin", "out", "scenario", "credential")
        if getattr(args, k) is None
    ]
    if missing:
        p.error(f"to sign, these are required: {', '.join(missing)}")
    try:
        return asyncio.run(run(args))
    except Exception as e:
        traceback.print_exc()
        print(json.dumps({"kind": "failures", "scenario": args.scenario, "failures": [f"{type(e).__name__}: {e}"]}))
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
