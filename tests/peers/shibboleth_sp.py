"""A real Shibboleth SP (Debian's shibd 3.4 and mod_shib under apache2) for the tests.

`ShibbolethSP` writes a complete configuration into a directory of its own under /tmp (0755:
apache's children run as www-data, and pytest's own tmp directories are 0700) and starts
shibd in the foreground and apache2 with `-DFOREGROUND`, both on 127.0.0.1 with a free port.
The system apache2 and shibd, and the files in /etc/shibboleth and /etc/apache2, are never
used: the stock attribute-policy.xml, security-policy.xml, protocols.xml and error templates
are copied in; the attribute map is the one docs/saml.md gives SP administrators
(docs/shibboleth/attribute-map.xml), read in place.

The SP trusts our IdP as a federation member would: the IdP's metadata from a local file,
its signature checked against the IdP's signing certificate (the Signature MetadataFilter),
the stock attribute policy's scope checks against its shibmd:Scope. Its own key pair serves
for signing and decryption. `/secure/` requires a session and shows, as a table, what mod_shib
exports to the application: REMOTE_USER and the mapped attributes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from saml import keys as saml_keys
from tests.peers.live import ROOT, LiveServer, free_port
from tests.peers.saml_sp import key_and_cert

ATTRIBUTE_MAP = ROOT / "docs" / "shibboleth" / "attribute-map.xml"
STOCK = Path("/etc/shibboleth")
STOCK_FILES = ("attribute-policy.xml", "security-policy.xml", "protocols.xml")
SHIBD = "/usr/sbin/shibd"
APACHE2 = "/usr/sbin/apache2"
MOD_SHIB = "/usr/lib/apache2/modules/mod_shib.so"
MODULES = Path("/usr/lib/apache2/modules")
START_TIMEOUT = 30

# What /secure/ shows: REMOTE_USER, the ids of docs/shibboleth/attribute-map.xml, and the
# authentication context mod_shib exports for every session.
SHOWN = ("REMOTE_USER", "eppn", "affiliation", "unscoped-affiliation", "subject-id",
         "pairwise-id", "persistent-id", "uid", "mail", "displayName", "givenName", "sn",
         "Shib-AuthnContext-Class", "Shib-Identity-Provider")

# Apache's CGI environment writes a variable's "-" as "_" (Shib-AuthnContext-Class arrives as
# Shib_AuthnContext_Class); the page shows mod_shib's own names.
CGI = f"""#!/usr/bin/python3
# What mod_shib exports to this application, as an HTML table (one row per variable set).
import html, os
NAMES = {SHOWN!r}
""" + """
rows = "".join(f"<tr><th>{n}</th><td>{html.escape(os.environ[n.replace('-', '_')])}</td></tr>"
               for n in NAMES if n.replace("-", "_") in os.environ)
print("Content-Type: text/html; charset=utf-8")
print()
print("<!doctype html><html lang='en'><title>Shibboleth SP</title><h1>Shibboleth SP</h1>"
      f"<table>{rows}</table>")
"""

# What the application behind this SP asks for in the SP's metadata (RequestedAttribute,
# published by the metadata generator): the eppn it takes as REMOTE_USER (required), and the
# person's affiliation, name and email.
REQUESTED = (("urn:oid:1.3.6.1.4.1.5923.1.1.1.6", True),  # eduPersonPrincipalName
             ("urn:oid:1.3.6.1.4.1.5923.1.1.1.9", False),  # eduPersonScopedAffiliation
             ("urn:oid:0.9.2342.19200300.100.1.3", False),  # mail
             ("urn:oid:2.16.840.1.113730.3.1.241", False),  # displayName
             ("urn:oid:2.5.4.42", False),  # givenName
             ("urn:oid:2.5.4.4", False))  # sn
URI_FORMAT = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"

SHIBBOLETH2 = """<SPConfig xmlns="urn:mace:shibboleth:3.0:native:sp:config"
    xmlns:conf="urn:mace:shibboleth:3.0:native:sp:config"
    xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" clockSkew="180">
  <OutOfProcess logger="{dir}/shibd.logger"/>
  <InProcess logger="{dir}/native.logger"/>
  <UnixListener address="{dir}/shibd.sock"/>
  <RequestMapper type="Native"><RequestMap/></RequestMapper>

  <ApplicationDefaults entityID={entity_id}
      REMOTE_USER="eppn subject-id pairwise-id persistent-id">
    <Sessions lifetime="28800" timeout="3600" relayState="ss:mem" checkAddress="false"
        handlerURL="/Shibboleth.sso" handlerSSL="false" cookieProps="http"
        redirectLimit="exact">
      <SSO entityID={idp_entity_id}>SAML2</SSO>
      <Logout>SAML2 Local</Logout>
      <Handler type="MetadataGenerator" Location="/Metadata" signing="false">
        <md:Organization>
          <md:OrganizationName xml:lang="en">Shibboleth SP</md:OrganizationName>
          <md:OrganizationDisplayName xml:lang="en">Shibboleth SP</md:OrganizationDisplayName>
          <md:OrganizationURL xml:lang="en">{url}/</md:OrganizationURL>
        </md:Organization>
        <md:AttributeConsumingService index="1">
          <md:ServiceName xml:lang="en">Shibboleth SP</md:ServiceName>
{requested}        </md:AttributeConsumingService>
      </Handler>
      <Handler type="Status" Location="/Status" acl="127.0.0.1 ::1"/>
      <Handler type="Session" Location="/Session" showAttributeValues="true"/>
    </Sessions>

    <Errors supportContact="root@localhost" styleSheet="/shibboleth-sp/main.css"
        session="{dir}/sessionError.html" metadata="{dir}/metadataError.html"
        access="{dir}/accessError.html" ssl="{dir}/sslError.html"
        localLogout="{dir}/localLogout.html" globalLogout="{dir}/globalLogout.html"
        partialLogout="{dir}/partialLogout.html"/>

    <MetadataProvider type="XML" validate="true" path="{dir}/idp-metadata.xml">
      <MetadataFilter type="Signature" certificate="{dir}/idp-signing.pem"
          verifyBackup="false"/>
    </MetadataProvider>

    <AttributeExtractor type="XML" validate="true" reloadChanges="false"
        path={attribute_map}/>
    <AttributeFilter type="XML" validate="true" path="{dir}/attribute-policy.xml"/>
    <CredentialResolver type="File" key="{dir}/sp-key.pem" certificate="{dir}/sp-cert.pem"/>
  </ApplicationDefaults>

  <SecurityPolicyProvider type="XML" validate="true" path="{dir}/security-policy.xml"/>
  <ProtocolProvider type="XML" validate="true" reloadChanges="false"
      path="{dir}/protocols.xml"/>
</SPConfig>
"""

LOGGER = """log4j.rootCategory={level}, out
log4j.category.XMLTooling.XMLObject=INFO
log4j.category.XMLTooling.XMLObjectBuilder=INFO
log4j.category.Shibboleth.PropertySet=INFO
log4j.appender.out=org.apache.log4j.{appender}
{file}log4j.appender.out.layout=org.apache.log4j.PatternLayout
log4j.appender.out.layout.ConversionPattern=%d{{%Y-%m-%d %H:%M:%S}} %p %c %x: %m%n
"""

APACHE = """ServerRoot "{dir}"
ServerName 127.0.0.1:{port}
Listen 127.0.0.1:{port}
PidFile "{dir}/apache2.pid"
ErrorLog "{dir}/apache-error.log"
LogLevel warn
User www-data
Group www-data
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authn_core_module {modules}/mod_authn_core.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule alias_module {modules}/mod_alias.so
LoadModule cgid_module {modules}/mod_cgid.so
LoadModule mod_shib {mod_shib}
StartServers 1
ServerLimit 1
ThreadsPerChild 16
MaxRequestWorkers 16
MinSpareThreads 1
MaxSpareThreads 16
ScriptSock "{dir}/cgid.sock"
LogFormat "%h \\"%r\\" %>s %b" short
CustomLog "{dir}/apache-access.log" short
DocumentRoot "{dir}/htdocs"

ShibConfig "{dir}/shibboleth2.xml"
ShibCompatValidUser Off

<Directory />
  Require all denied
</Directory>
<Location /favicon.ico>
  Require all granted
</Location>
Alias /shibboleth-sp/main.css /usr/share/shibboleth/main.css
<Location /shibboleth-sp>
  Require all granted
</Location>
<Location /Shibboleth.sso>
  AuthType None
  Require all granted
</Location>
ScriptAliasMatch "^/secure/" "{dir}/cgi/secure.cgi"
<Directory "{dir}/cgi">
  Require all granted
</Directory>
<Location /secure>
  AuthType shibboleth
  ShibRequestSetting requireSession 1
  Require shib-session
</Location>
"""


def _xml_attr(value: str | Path) -> str:
    return quoteattr(str(value))


def _requested() -> str:
    return "".join(f'          <md:RequestedAttribute Name="{name}" NameFormat="{URI_FORMAT}" '
                   f'isRequired="{str(required).lower()}"/>\n' for name, required in REQUESTED)


@dataclass
class ShibbolethSP:
    """shibd + apache2 with mod_shib, trusting the IdP `idp_entity_id` whose signed metadata
    is `idp_metadata`, signed by the key of `idp_signing_cert` (PEM)."""

    idp_entity_id: str
    idp_metadata: str
    idp_signing_cert: str
    port: int = field(default_factory=free_port)
    directory: Path = field(init=False, repr=False)  # made by start()
    _processes: dict[str, subprocess.Popen] = field(init=False, repr=False, default_factory=dict)

    @classmethod
    def for_idp(cls, idp: LiveServer) -> ShibbolethSP:
        """An SP for a running `idp` (UM2FA_BASE_URL set): its metadata as `um2fa saml
        metadata` prints it, and its newest signing certificate, as its operator would give
        them to the SP's administrator."""
        entity_id = idp.url + "/saml/metadata"
        metadata = idp.cli("saml", "metadata").stdout
        cert = saml_keys.load_all(idp.instance_dir, entity_id, make=False)[-1].cert_pem
        return cls(idp_entity_id=entity_id, idp_metadata=metadata, idp_signing_cert=cert)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def entity_id(self) -> str:
        return self.url + "/shibboleth"

    @property
    def acs_url(self) -> str:
        return self.url + "/Shibboleth.sso/SAML2/POST"

    @property
    def env(self) -> dict[str, str]:
        """Both processes look for nothing under /etc/shibboleth, /run or /var/log."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIBSP_")}
        where = str(self.directory)
        env.update({"SHIBSP_CFGDIR": where, "SHIBSP_RUNDIR": where, "SHIBSP_CACHEDIR": where,
                    "SHIBSP_LOGDIR": where, "SHIBSP_CONFIG": where + "/shibboleth2.xml"})
        return env

    # configuration

    def write_config(self) -> None:
        """A new directory (readable by www-data) with everything both processes read."""
        self.directory = d = Path(tempfile.mkdtemp(prefix="um2fa-shibsp-"))
        d.chmod(0o755)
        for name in STOCK_FILES:
            shutil.copyfile(STOCK / name, d / name)
        for template in STOCK.glob("*.html"):  # the error and logout pages
            shutil.copyfile(template, d / template.name)
        key, cert = key_and_cert("127.0.0.1")
        (d / "sp-key.pem").write_text(key)
        (d / "sp-key.pem").chmod(0o600)
        (d / "sp-cert.pem").write_text(cert)
        (d / "idp-metadata.xml").write_text(self.idp_metadata)
        (d / "idp-signing.pem").write_text(self.idp_signing_cert)
        (d / "shibboleth2.xml").write_text(SHIBBOLETH2.format(
            dir=escape(str(d)), url=escape(self.url), requested=_requested(),
            entity_id=_xml_attr(self.entity_id),
            idp_entity_id=_xml_attr(self.idp_entity_id), attribute_map=_xml_attr(ATTRIBUTE_MAP)))
        (d / "shibd.logger").write_text(LOGGER.format(
            level="INFO", appender="FileAppender",
            file=f"log4j.appender.out.fileName={d}/shibd.log\n"))
        # apache's children (www-data) log to their stderr: apache's error log.
        (d / "native.logger").write_text(LOGGER.format(level="WARN", appender="ConsoleAppender",
                                                       file=""))
        (d / "htdocs").mkdir()
        (d / "htdocs" / "favicon.ico").write_bytes(b"")  # browsers ask; a 403 is noise
        (d / "cgi").mkdir()
        script = d / "cgi" / "secure.cgi"
        script.write_text(CGI)
        script.chmod(0o755)
        (d / "apache2.conf").write_text(APACHE.format(dir=d, port=self.port, modules=MODULES,
                                                      mod_shib=MOD_SHIB))

    # processes

    def start(self) -> ShibbolethSP:
        missing = [p for p in (SHIBD, APACHE2, MOD_SHIB) if not Path(p).exists()]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} not installed: run ./scripts/setup --test")
        self.write_config()
        try:
            self._spawn("shibd", [SHIBD, "-F", "-f", "-c",
                                  str(self.directory / "shibboleth2.xml"),
                                  "-p", str(self.directory / "shibd.pid")])
            self._wait_for(lambda: (self.directory / "shibd.sock").exists(), "shibd's socket")
            self._spawn("apache2", [APACHE2, "-f",
                                    str(self.directory / "apache2.conf"), "-DFOREGROUND"])
            self._wait_for(self._status_ok, "/Shibboleth.sso/Status")
        except BaseException:
            self.stop()  # the error carries the logs' tails
            raise
        return self

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.directory / f"{name}.out", "w")  # noqa: SIM115 - the child holds it
        with log:
            # a process group of its own: apache's children and cgid daemon end with it
            self._processes[name] = subprocess.Popen(
                args, env=self.env, cwd=self.directory, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)

    def _status_ok(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/Shibboleth.sso/Status",  # noqa: S310
                                        timeout=2) as answer:
                return b"<OK/>" in answer.read()
        except (OSError, urllib.error.URLError):
            return False

    def _wait_for(self, ready, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for name, process in self._processes.items():
                if process.poll() is not None:
                    raise AssertionError(f"{name} exited ({process.returncode}) before "
                                         f"{what} answered\n{self.logs()}")
            if ready():
                return
            time.sleep(0.1)
        raise AssertionError(f"{what} did not answer in {START_TIMEOUT} s\n{self.logs()}")

    def logs(self, lines: int = 30) -> str:
        """The tails of shibd's and apache's logs, for a failure's message."""
        out = []
        for name in ("shibd.out", "shibd.log", "apache2.out", "apache-error.log"):
            path = self.directory / name
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {name}\n" + "\n".join(tail))
        return "\n".join(out)

    def stop(self) -> None:
        """End apache2, then shibd (SIGTERM; their whole process group after 10 s); remove the
        directory."""
        for name in ("apache2", "shibd"):
            process = self._processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # its group: apache's children too
                process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)

    # the operator's side

    def metadata(self) -> bytes:
        """The SP's metadata from its own /Shibboleth.sso/Metadata generator."""
        with urllib.request.urlopen(self.url + "/Shibboleth.sso/Metadata",  # noqa: S310
                                    timeout=10) as answer:
            return answer.read()

    def register_with(self, idp: LiveServer) -> None:
        """`um2fa sp add --metadata FILE` with the metadata the SP publishes."""
        path = self.directory / "sp-metadata.xml"
        path.write_bytes(self.metadata())
        idp.cli("sp", "add", "--metadata", str(path))
