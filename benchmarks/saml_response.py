"""What a SAML Response costs to build: signed as before, and encrypted to the SP as issue 14
does (AES-256-GCM, AES-256-CBC), with the attributes an R&S SP receives. CPU time per Response,
median of N runs after a warm-up, one process.

    python -m benchmarks.saml_response [--runs 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from app.core.sp_encryption import DATA_ALGORITHMS, AssertionEncryption
from saml import keys
from saml.response import Assertion, build_response

GCM, CBC = DATA_ALGORITHMS[0], "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
ATTRIBUTES = {
    "pairwise-id": ["q3mz4k7c2vd1b5n8x0r6t9w2ye@um.edu.mo"],
    "subject-id": ["a7c2vd1b5n8x0r6t9w2yeq3mz4@um.edu.mo"],
    "eduPersonPrincipalName": ["alice@um.edu.mo"],
    "eduPersonScopedAffiliation": ["staff@um.edu.mo", "member@um.edu.mo"],
    "mail": ["alice@um.edu.mo"], "displayName": ["Alice Chan"], "givenName": ["Alice"],
    "sn": ["Chan"],
}


def _assertion() -> Assertion:
    return Assertion(issuer="https://2fa.example.edu/saml/metadata",
                     audience="https://sp.example.edu/shibboleth",
                     recipient="https://sp.example.edu/Shibboleth.sso/SAML2/POST",
                     in_response_to="_" + "a" * 40, nameid_format=(
                         "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"),
                     nameid="x" * 43, attributes=ATTRIBUTES,
                     authn_context="https://refeds.org/profile/mfa", session_index="_" + "b" * 32,
                     now=datetime.now(UTC), lifetime=300)


def _median_ms(work, runs: int) -> float:
    for _ in range(10):
        work()
    times = []
    for _ in range(runs):
        start = time.process_time()
        work()
        times.append(time.process_time() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        signing = keys.load_all(Path(tmp), "idp", make=True)[-1]
        sp_cert = keys.generate(Path(tmp), "sp", keys.ENCRYPTION).cert_b64
    rows = [("signed (assertion and response)", None),
            ("signed, assertion encrypted AES-256-GCM + RSA-OAEP", GCM),
            ("signed, assertion encrypted AES-256-CBC + RSA-OAEP", CBC)]
    print(f"| Response ({runs} runs, CPU ms, median) | ms |\n|---|---|")
    for label, algorithm in rows:
        encryption = AssertionEncryption(sp_cert, algorithm) if algorithm else None
        ms = _median_ms(lambda e=encryption: build_response(_assertion(), signing, e), runs)
        print(f"| {label} | {ms:.2f} |")


if __name__ == "__main__":
    main()
