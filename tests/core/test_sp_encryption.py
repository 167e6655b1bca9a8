"""Which SPs get encrypted assertions, with which algorithm (app/core/sp_encryption.py)."""

from __future__ import annotations

import json

import pytest

from app.core import sp_encryption
from app.models import ServiceProvider

GCM256 = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
GCM128 = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
CBC256 = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
CBC128 = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
TRIPLEDES = "http://www.w3.org/2001/04/xmlenc#tripledes-cbc"
OAEP = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"


def provider(certs=("Y2VydA==",), methods=(), on=True) -> ServiceProvider:
    return ServiceProvider(entity_id="https://sp.example/", encryption_certs=json.dumps(certs),
                           encryption_methods=json.dumps(list(methods)), encrypt_assertions=on)


@pytest.mark.parametrize(("methods", "chosen"), [
    ((), GCM256),                               # says nothing: AES-256-GCM
    ((OAEP,), GCM256),                          # key transport only
    ((CBC128, CBC256, OAEP), CBC256),           # cannot do GCM: the strongest CBC it lists
    ((CBC128,), CBC128),
    ((CBC256, GCM128), GCM128),                 # a GCM it lists beats any CBC
    ((GCM128, GCM256, CBC256), GCM256),
    ((TRIPLEDES,), GCM256),                     # nothing we would use: the default
])
def test_the_data_algorithm(methods, chosen):
    encryption = sp_encryption.for_assertions(provider(methods=methods))
    assert encryption is not None and encryption.algorithm == chosen
    assert encryption.cert == "Y2VydA=="


def test_the_first_certificate_is_used():
    assert sp_encryption.for_assertions(provider(certs=("Zmlyc3Q=", "c2Vjb25k"))).cert \
        == "Zmlyc3Q="


def test_no_certificate_or_switched_off_means_plain():
    assert sp_encryption.for_assertions(provider(certs=())) is None
    assert sp_encryption.for_assertions(provider(on=False)) is None
