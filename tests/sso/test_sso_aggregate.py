"""Issue 14, point 6: federation metadata aggregates (`um2fa sp add --aggregate URL --cert FILE`),
served by a local HTTP server, signed here the way federations sign them."""

from __future__ import annotations

import functools
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from lxml import etree
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from sqlalchemy import select

from app.core import aggregates
from app.models import MetadataAggregate, ServiceProvider
from tests.conftest import add_totp_device, audit_rows, committed, make_user
from tests.helpers.sso import IDP, go, idp_metadata, sign_in_through_prompt
from tests.peers.saml_sp import TestSP, key_and_cert

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "{http://www.w3.org/2000/09/xmldsig#}"
RS = "http://refeds.org/category/research-and-scholarship"
SP1, SP2, SP3 = "http://sp.test", "http://sp2.test", "http://sp3.test"


@pytest.fixture
def settings_overrides():
    return {"base_url": IDP}


@functools.cache
def federation_key(name: str) -> tuple[str, str]:
    """The key and certificate a federation (or an impostor: "other") signs with."""
    return key_and_cert(f"{name}.test")


def sp_entity(base: str, *, categories: tuple[str, ...] = (), name: str = "",
              valid_until: datetime | None = None) -> str:
    """A python3-saml SP's EntityDescriptor (as TestSP publishes it), with entity categories."""
    root = etree.fromstring(TestSP(base=base, name=name or "Test SP").metadata().encode())
    if categories:
        values = "".join(f"<saml:AttributeValue>{c}</saml:AttributeValue>" for c in categories)
        root.insert(0, etree.fromstring(
            f'<md:Extensions xmlns:md="{MD}" '
            f'xmlns:mdattr="urn:oasis:names:tc:SAML:metadata:attribute" '
            f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"><mdattr:EntityAttributes>'
            f'<saml:Attribute Name="http://macedir.org/entity-category">{values}'
            f"</saml:Attribute></mdattr:EntityAttributes></md:Extensions>"))
    if valid_until is not None:
        root.set("validUntil", stamp(valid_until))
    return etree.tostring(root, encoding="unicode")


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def aggregate(entities: list[str], *, valid_until: datetime | None = None,
              cache_duration: str = "", key: str = "", signed: bool = True,
              agg_id: str = "_federation2026") -> str:
    """An md:EntitiesDescriptor of `entities`, signed (RSA-SHA256) with the federation's key."""
    until = valid_until or datetime.now(UTC) + timedelta(days=10)
    cache = f' cacheDuration="{cache_duration}"' if cache_duration else ""
    xml = (f'<md:EntitiesDescriptor xmlns:md="{MD}" ID="{agg_id}" Name="test-federation" '
           f'validUntil="{stamp(until)}"{cache}>{"".join(entities)}</md:EntitiesDescriptor>')
    if not signed:
        return xml
    pem_key, pem_cert = federation_key(key or "federation")
    signed_xml = OneLogin_Saml2_Utils.add_sign(xml, pem_key, pem_cert,
                                               sign_algorithm=C.RSA_SHA256,
                                               digest_algorithm=C.SHA256)
    return signed_xml.decode() if isinstance(signed_xml, bytes) else signed_xml


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/elsewhere":
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1:1/aggregate.xml")
            self.end_headers()
            return
        body = self.server.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/samlmetadata+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class Federation:
    """A federation's metadata server on 127.0.0.1 and its signing certificate on disk."""

    def __init__(self, server: ThreadingHTTPServer, tmp_path) -> None:
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}/aggregate.xml"
        self.cert_file = tmp_path / "federation.pem"
        self.cert_file.write_text(federation_key("federation")[1])
        self.other_cert_file = tmp_path / "other.pem"
        self.other_cert_file.write_text(federation_key("other")[1])

    def publish(self, xml: str | bytes) -> None:
        self.server.files["/aggregate.xml"] = xml.encode() if isinstance(xml, str) else xml


@pytest.fixture
def federation(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.files = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Federation(server, tmp_path)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def add(runner, federation, *extra: str, cert=None):
    return runner.invoke(args=["sp", "add", "--aggregate", federation.url, "--cert",
                               str(cert or federation.cert_file), *extra])


def registered(app) -> dict[str, ServiceProvider]:
    with committed(app) as c:
        rows = list(c.db.scalars(select(ServiceProvider)))
        c.db.expunge_all()
    return {sp.entity_id: sp for sp in rows}


def the_aggregate(app) -> MetadataAggregate | None:
    with committed(app) as c:
        row = c.db.scalar(select(MetadataAggregate))
        c.db.expunge_all()
    return row


# --- loading ---------------------------------------------------------------------------------

def test_a_signed_aggregate_of_two_sps_loads_and_a_login_at_one_works(app, client, runner,
                                                                       clock, federation):
    make_user(app)
    device_id, secret = add_totp_device(app)
    federation.publish(aggregate([sp_entity(SP1), sp_entity(SP2)]))
    result = add(runner, federation)
    assert result.exit_code == 0, result.output
    assert "2 added" in result.output
    sps = registered(app)
    assert set(sps) == {SP1 + "/metadata", SP2 + "/metadata"}
    agg = the_aggregate(app)
    assert all(sp.aggregate_id == agg.id for sp in sps.values())
    assert agg.last_error == "" and agg.refreshed_at is not None
    listing = runner.invoke(args=["sp", "aggregates"]).output
    assert federation.url in listing and "2 SPs" in listing
    assert audit_rows(app, "sp.aggregate")[-1].result == "ok"

    sp = TestSP(idp_metadata=idp_metadata(client))  # SP1, with our IdP's metadata
    response_b64, request_id = sign_in_through_prompt(client, app, sp, clock, secret, device_id)
    auth = sp.acs_post(response_b64, request_id)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert auth.is_authenticated()


def test_entities_that_cannot_be_used_are_skipped_and_counted(app, runner, federation):
    past = datetime.now(UTC) - timedelta(hours=1)
    no_post_acs = sp_entity(SP3).replace(C.BINDING_HTTP_POST, C.BINDING_HTTP_REDIRECT)
    idp = (f'<md:EntityDescriptor xmlns:md="{MD}" entityID="https://idp.test/idp">'
           f'<md:IDPSSODescriptor protocolSupportEnumeration="{C.NS_SAMLP}"/>'
           f"</md:EntityDescriptor>")
    nested = (f'<md:EntitiesDescriptor xmlns:md="{MD}" Name="nested">{sp_entity(SP2)}'
              f"</md:EntitiesDescriptor>")
    federation.publish(aggregate([sp_entity(SP1, valid_until=past), no_post_acs, idp, nested]))
    result = add(runner, federation)
    assert result.exit_code == 0, result.output
    assert "1 added" in result.output and "2 skipped" in result.output
    assert f"{SP1}/metadata: its validUntil has passed" in result.output
    assert f"{SP3}/metadata: The metadata has no AssertionConsumerService" in result.output
    assert set(registered(app)) == {SP2 + "/metadata"}  # from the nested EntitiesDescriptor


def test_an_entity_with_a_bad_acs_index_is_skipped_and_the_others_load(app, runner, federation):
    bad_index = sp_entity(SP2).replace('index="1"', 'index="first"')
    federation.publish(aggregate([sp_entity(SP1), bad_index]))
    result = add(runner, federation)
    assert result.exit_code == 0, result.output
    assert "1 added" in result.output and "1 skipped" in result.output
    assert f"{SP2}/metadata: " in result.output and "index" in result.output
    assert set(registered(app)) == {SP1 + "/metadata"}


def test_the_category_filter_keeps_only_research_and_scholarship_sps(app, runner, federation):
    federation.publish(aggregate([sp_entity(SP1, categories=(RS,)), sp_entity(SP2),
                                  sp_entity(SP3, categories=("http://example.org/other",))]))
    result = add(runner, federation, "--category", RS)
    assert result.exit_code == 0, result.output
    assert "1 added" in result.output and "2 not in the categories" in result.output
    assert set(registered(app)) == {SP1 + "/metadata"}


# --- refused aggregates: nothing changes -----------------------------------------------------

def _tampered(how: str) -> str | bytes:
    good = aggregate([sp_entity(SP1), sp_entity(SP2)])
    if how == "an ACS URL changed after signing":
        changed = good.replace('Location="http://sp2.test/acs"',
                               'Location="https://evil.example/acs"')
        assert changed != good
        return changed
    if how == "a third SP injected after signing":
        root = etree.fromstring(good.encode())
        root.append(etree.fromstring(sp_entity(SP3)))
        return etree.tostring(root)
    if how in ("the signed aggregate wrapped in another",
               "the signature moved to the wrapper, its reference to the original"):
        signed = etree.fromstring(good.encode())
        wrapper = etree.fromstring(aggregate([sp_entity(SP3)], signed=False, agg_id="_evil")
                                   .encode())
        if how.startswith("the signature moved"):
            signature = signed.find(DS + "Signature")
            signed.remove(signature)
            wrapper.insert(0, signature)
        wrapper.append(signed)
        return etree.tostring(wrapper)
    if how == "signed with another key":
        return aggregate([sp_entity(SP1), sp_entity(SP3)], key="other")
    if how == "unsigned":
        return aggregate([sp_entity(SP1), sp_entity(SP3)], signed=False)
    if how == "expired":
        return aggregate([sp_entity(SP1)], valid_until=datetime.now(UTC) - timedelta(minutes=1))
    if how == "not XML":
        return b"<html><body>Service Unavailable"
    if how == "a document type declaration":
        return '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>' + good
    if how == "one SP's metadata, not an aggregate":
        return sp_entity(SP3)
    raise AssertionError(how)


REFUSALS = [
    ("an ACS URL changed after signing", "signature is not valid"),
    ("a third SP injected after signing", "signature is not valid"),
    ("the signed aggregate wrapped in another", "does not sign the metadata itself"),
    ("the signature moved to the wrapper, its reference to the original",
     "does not sign the metadata itself"),
    ("signed with another key", "signature is not valid"),
    ("unsigned", "The metadata is not signed"),
    ("expired", "expired"),
    ("not XML", "not well-formed"),
    ("a document type declaration", "document type declaration"),
    ("one SP's metadata, not an aggregate", "not a federation's aggregate"),
]


@pytest.mark.parametrize("how, message", REFUSALS)
def test_a_refused_aggregate_changes_nothing(app, runner, federation, how, message):
    federation.publish(_tampered(how))
    first = add(runner, federation)
    assert first.exit_code == 1 and message in first.output, first.output
    assert "refused, nothing changed" in first.output and "Traceback" not in first.output
    assert registered(app) == {} and the_aggregate(app) is None

    federation.publish(aggregate([sp_entity(SP1), sp_entity(SP2)]))
    assert add(runner, federation).exit_code == 0
    before = {e: (sp.acs_urls, sp.metadata_xml) for e, sp in registered(app).items()}
    federation.publish(_tampered(how))
    result = runner.invoke(args=["sp", "refresh", "--all"])
    assert result.exit_code == 1 and message in result.output, result.output
    assert {e: (sp.acs_urls, sp.metadata_xml) for e, sp in registered(app).items()} == before
    agg = the_aggregate(app)
    assert message in agg.last_error
    assert message in runner.invoke(args=["sp", "aggregates"]).output
    assert audit_rows(app, "sp.aggregate")[-1].result == "refused"


def test_the_wrong_certificate_is_refused(app, runner, federation):
    federation.publish(aggregate([sp_entity(SP1)]))
    result = add(runner, federation, cert=federation.other_cert_file)
    assert result.exit_code == 1 and "signature is not valid" in result.output
    assert registered(app) == {}


def test_too_large_an_aggregate_is_refused(app, runner, federation, monkeypatch):
    from saml import aggregate as saml_aggregate

    federation.publish(aggregate([sp_entity(SP1)]))
    monkeypatch.setattr(saml_aggregate, "MAX_AGGREGATE_BYTES", 1000)
    result = add(runner, federation)
    assert result.exit_code == 1 and "larger than 1000 bytes" in result.output
    assert registered(app) == {}


@pytest.mark.parametrize("args, message", [
    (["--aggregate", "ftp://127.0.0.1/agg.xml", "--cert", "{cert}"], "http:// or https://"),
    (["--aggregate", "http://127.0.0.1:1/agg.xml", "--cert", "{cert}"], "could not be fetched"),
    (["--aggregate", "{url}missing", "--cert", "{cert}"], "HTTP 404"),
    (["--aggregate", "{base}/elsewhere", "--cert", "{cert}"], "redirects to one that is not"),
    (["--aggregate", "{url}", "--cert", "{notcert}"], "not a PEM X.509 certificate"),
    (["--aggregate", "{url}"], "needs --cert"),
    (["--aggregate", "{url}", "--metadata", "{cert}", "--cert", "{cert}"], "either --metadata"),
    (["--metadata", "{cert}", "--category", RS], "go with --aggregate"),
])
def test_bad_aggregate_options_get_a_clear_error(runner, federation, tmp_path, args, message):
    not_cert = tmp_path / "not-a-cert.pem"
    not_cert.write_text("hello")
    base = federation.url.removesuffix("/aggregate.xml")
    args = [a.format(url=federation.url, base=base, cert=federation.cert_file,
                     notcert=not_cert) for a in args]
    result = runner.invoke(args=["sp", "add", *args])
    assert result.exit_code != 0 and message in result.output, result.output
    assert "Traceback" not in result.output


# --- refreshing ------------------------------------------------------------------------------

def test_a_refresh_adds_updates_and_removes_and_keeps_operator_settings(app, runner,
                                                                        federation):
    federation.publish(aggregate([sp_entity(SP1), sp_entity(SP2)]))
    assert add(runner, federation).exit_code == 0
    with committed(app) as c:
        sp = c.db.scalar(select(ServiceProvider).where(
            ServiceProvider.entity_id == SP1 + "/metadata"))
        sp.allow_email_nameid, sp.encrypt_assertions, sp.release = True, False, '["uid"]'
    federation.publish(aggregate([sp_entity(SP1, name="Renamed SP"), sp_entity(SP3)]))
    result = runner.invoke(args=["sp", "refresh", "--all"])
    assert result.exit_code == 0, result.output
    assert "1 added, 1 updated, 0 unchanged, 1 removed" in result.output
    sps = registered(app)
    assert set(sps) == {SP1 + "/metadata", SP3 + "/metadata"}
    kept = sps[SP1 + "/metadata"]
    assert kept.name == "Renamed SP"
    assert (kept.allow_email_nameid, kept.encrypt_assertions, kept.release) == \
        (True, False, '["uid"]')


def test_an_sp_registered_on_its_own_is_not_overwritten(app, runner, federation, tmp_path):
    own = tmp_path / "own.xml"
    own.write_text(TestSP(base=SP1, name="Our own SP1").metadata())
    assert runner.invoke(args=["sp", "add", "--metadata", str(own)]).exit_code == 0
    federation.publish(aggregate([sp_entity(SP1, name="Federation's SP1"), sp_entity(SP2)]))
    result = add(runner, federation)
    assert result.exit_code == 0, result.output
    assert "1 registered on their own, not overwritten" in result.output
    assert f"not overwritten (registered on its own): {SP1}/metadata" in result.output
    sps = registered(app)
    assert sps[SP1 + "/metadata"].aggregate_id is None
    assert sps[SP1 + "/metadata"].name == "Our own SP1"
    assert sps[SP2 + "/metadata"].aggregate_id is not None
    # an aggregate's SP cannot be removed on its own: the next refresh would bring it back
    removed = runner.invoke(args=["sp", "remove", SP2 + "/metadata"])
    assert removed.exit_code == 1 and "aggregate" in removed.output
    gone = runner.invoke(args=["sp", "remove-aggregate", federation.url])
    assert gone.exit_code == 0 and "its 1 SP(s)" in gone.output
    assert set(registered(app)) == {SP1 + "/metadata"} and the_aggregate(app) is None


def test_after_valid_until_passes_the_sps_are_refused_at_sso(app, client, runner, clock,
                                                           federation):
    federation.publish(aggregate([sp_entity(SP1)],
                                 valid_until=datetime.fromtimestamp(clock.now, UTC)
                                 + timedelta(hours=2)))
    assert add(runner, federation).exit_code == 0
    sp = TestSP(idp_metadata=idp_metadata(client))
    url, _ = sp.login()
    assert go(client, url).headers["Location"] == "/sso/continue"
    clock.advance(2 * 3600 + 1)
    url, _ = sp.login()
    response = go(client, url)
    assert response.status_code == 400 and "not registered" in response.get_data(as_text=True)
    assert "SAMLResponse" not in response.get_data(as_text=True)


def test_the_schedule_follows_cache_duration_and_valid_until(app, runner, clock, federation):
    now = datetime.fromtimestamp(clock.now, UTC)
    # no cacheDuration: the setting (6 h), but never past validUntil (here 2 h away)
    until = now.replace(microsecond=0) + timedelta(hours=2)
    federation.publish(aggregate([sp_entity(SP1)], valid_until=until))
    assert add(runner, federation).exit_code == 0
    assert the_aggregate(app).next_refresh_at == until
    federation.publish(aggregate([sp_entity(SP1)], cache_duration="PT1H"))
    assert runner.invoke(args=["sp", "refresh", "--all"]).exit_code == 0
    agg = the_aggregate(app)
    assert abs((agg.next_refresh_at - now) - timedelta(hours=1)) < timedelta(seconds=2)
    federation.publish(aggregate([sp_entity(SP1)]))
    assert runner.invoke(args=["sp", "refresh", "--all"]).exit_code == 0
    agg = the_aggregate(app)
    assert abs((agg.next_refresh_at - now) - timedelta(hours=6)) < timedelta(seconds=2)
    result = runner.invoke(args=["sp", "refresh"])  # none is due yet
    assert result.exit_code == 0 and "no aggregate is due" in result.output


def test_a_due_aggregate_is_claimed_once(app, runner, clock, federation):
    from saml.aggregate_refresh import SCHEDULER, refresh

    federation.publish(aggregate([sp_entity(SP1)]))
    assert add(runner, federation).exit_code == 0
    agg_id = the_aggregate(app).id
    clock.advance(6 * 3600 + 1)
    with committed(app) as c:
        assert aggregates.due(c) == [agg_id]
        assert aggregates.claim(c, agg_id) is True
    with committed(app) as c:  # another node, at the same moment
        assert aggregates.due(c) == []
        assert aggregates.claim(c, agg_id) is False
    clock.advance(aggregates.CLAIM_SECONDS + 1)  # the claiming node died: the claim lapses
    with app.app_context():
        first = refresh(SCHEDULER)
        second = refresh(SCHEDULER)
    assert [o.url for o in first] == [federation.url] and first[0].report is not None
    assert second == []


def test_serve_refreshes_on_a_background_thread(app, clock, runner, federation):
    from saml.aggregate_refresh import start_refresher

    federation.publish(aggregate([sp_entity(SP1)]))
    assert add(runner, federation).exit_code == 0
    federation.publish(aggregate([sp_entity(SP1), sp_entity(SP2)]))
    clock.advance(6 * 3600 + 1)
    stop = start_refresher(app, every_seconds=0.05)
    try:
        for _ in range(100):  # at most 5 s
            if len(registered(app)) == 2:
                break
            time.sleep(0.05)
    finally:
        stop.set()
    assert set(registered(app)) == {SP1 + "/metadata", SP2 + "/metadata"}


def test_an_older_copy_of_the_aggregate_is_refused(app, runner, federation):
    """A replayed older copy (still signed, still within its own validUntil) would bring back
    SPs the federation has since removed: a refresh refuses a validUntil earlier than the one
    already loaded."""
    now = datetime.now(UTC)
    old = aggregate([sp_entity(SP1), sp_entity(SP2)], valid_until=now + timedelta(days=5))
    federation.publish(aggregate([sp_entity(SP1)], valid_until=now + timedelta(days=10)))
    assert add(runner, federation).exit_code == 0
    federation.publish(old)
    result = runner.invoke(args=["sp", "refresh", "--all"])
    assert result.exit_code == 1 and "older than the copy loaded before" in result.output
    assert set(registered(app)) == {f"{SP1}/metadata"}
    assert audit_rows(app, "sp.aggregate")[-1].result == "refused"


def test_an_unexpected_error_in_one_aggregate_is_recorded_and_the_others_refresh(
        app, runner, clock, federation, monkeypatch):
    """One aggregate's unforeseen failure (a bug, not a refusal) must not stop the round: it
    becomes that aggregate's last_error and the next aggregates are still read."""
    import saml.aggregate_refresh as aggregate_refresh

    second_url = federation.url.replace("/aggregate.xml", "/second.xml")
    federation.publish(aggregate([sp_entity(SP1)]))
    federation.server.files["/second.xml"] = aggregate([sp_entity(SP2)]).encode()
    assert add(runner, federation).exit_code == 0
    assert runner.invoke(args=["sp", "add", "--aggregate", second_url, "--cert",
                               str(federation.cert_file)]).exit_code == 0
    federation.server.files["/second.xml"] = aggregate([sp_entity(SP2), sp_entity(SP3)]).encode()
    real_load = aggregate_refresh.load

    def load(url, cert_pem, now):
        if url == federation.url:
            raise RuntimeError("an unforeseen failure")
        return real_load(url, cert_pem, now)

    monkeypatch.setattr(aggregate_refresh, "load", load)
    clock.advance(6 * 3600 + 1)
    with app.app_context():
        outcomes = aggregate_refresh.refresh(aggregate_refresh.SCHEDULER)
    by_url = {o.url: o for o in outcomes}
    assert set(by_url) == {federation.url, second_url}
    assert by_url[federation.url].error and by_url[second_url].report is not None
    assert {SP3 + "/metadata", SP2 + "/metadata"} <= set(registered(app))
    with committed(app) as c:
        rows = {a.url: a for a in c.db.scalars(select(MetadataAggregate))}
        assert "unexpected error" in rows[federation.url].last_error
        assert rows[second_url].last_error == ""
    result = runner.invoke(args=["sp", "refresh", "--all"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "unexpected error" in result.output
