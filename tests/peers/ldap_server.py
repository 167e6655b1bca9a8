"""A real OpenLDAP server for the LDAP directory tests: Debian's slapd in a subprocess.

`SlapdServer.start()` builds a cn=config directory with slapadd (mdb backend, a tiny schema for
date of birth and ID characters, TLS with a CA and server certificate made here), loads the
test tree, and runs slapd in the foreground on 127.0.0.1: ldap:// (StartTLS) and ldaps:// on
free ports. `stop()` and `start()` again keep the same ports and data, for the outage tests.
slapd logs its "stats" level (connections, BINDs, SEARCHes) to `log_path`.

For the benchmarks (benchmarks/radius_ldap.py): `bulk_users` more people (u000000, u000001, ...)
sharing one password (`BULK_PASSWORD`, one {SSHA} hash), loaded with slapadd in the same build,
and `log_level` "0" for a slapd that logs nothing per operation (as Debian's default does).

Nothing here touches a system slapd: everything lives in the directory given.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import shutil
import socket
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SUFFIX = "dc=um,dc=edu,dc=mo"
PEOPLE = f"ou=people,{SUFFIX}"
SERVICE_DN = f"cn=um2fa,ou=services,{SUFFIX}"
SERVICE_PASSWORD = "service-secret-1"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "admin-secret-1"
HELPDESK_GROUP = f"cn=it-helpdesk,ou=groups,{SUFFIX}"
ADMIN_GROUP = f"cn=it-admins,ou=groups,{SUFFIX}"
PASSWORDS = {"alice": "alice-pass-1", "bob": "bob-pass-2", "carol": "carol-pass-3"}
BULK_PASSWORD = "bulk-pass-1"

SCHEMA = """\
dn: cn=um,cn=schema,cn=config
objectClass: olcSchemaConfig
cn: um
olcAttributeTypes: ( 1.3.6.1.4.1.99999.1.1 NAME 'umDateOfBirth'
  DESC 'date of birth, YYYY-MM-DD or GeneralizedTime'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
olcAttributeTypes: ( 1.3.6.1.4.1.99999.1.2 NAME 'umIdNumber'
  DESC 'ID card or passport number'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
olcObjectClasses: ( 1.3.6.1.4.1.99999.2.1 NAME 'umPerson' AUXILIARY
  MAY ( umDateOfBirth $ umIdNumber ) )
"""

_OPERATION = re.compile(r'conn=\d+ (?:fd=\d+ (ACCEPT) |op=\d+ (?:(BIND) dn="[^"]*" method=|'
                        r"(SRCH) base=|(EXT) oid=))")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(common_name))
            .issuer_name(_name(common_name)).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_server_cert(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate
                     ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name("localhost"))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def slappasswd(password: str) -> str:
    out = subprocess.run(["slappasswd", "-h", "{SSHA}", "-T", "/dev/stdin"], input=password,
                         capture_output=True, text=True, check=True, timeout=10)
    return out.stdout.strip()


def _config_ldif(root: Path) -> str:
    return f"""\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {root}/slapd.pid
olcTLSCACertificateFile: {root}/ca.pem
olcTLSCertificateFile: {root}/server.pem
olcTLSCertificateKeyFile: {root}/server.key
olcLogLevel: stats

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif

include: file:///etc/ldap/schema/cosine.ldif

include: file:///etc/ldap/schema/inetorgperson.ldif

{SCHEMA}
dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: 500

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {SUFFIX}
olcDbDirectory: {root}/data
olcDbMaxSize: 104857600
olcRootDN: {ADMIN_DN}
olcRootPW: {slappasswd(ADMIN_PASSWORD)}
olcDbIndex: objectClass eq
olcDbIndex: uid eq
olcAccess: {{0}}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {{1}}to * by dn.exact="{SERVICE_DN}" read by self read by * none
"""


def _person(uid: str, cn: str, mail: str, role: str, dob: str, id_number: str) -> str:
    return f"""\
dn: uid={uid},{PEOPLE}
objectClass: inetOrgPerson
objectClass: umPerson
uid: {uid}
cn: {cn}
givenName: {cn.split()[0]}
sn: {cn.split()[-1]}
mail: {mail}
employeeType: {role}
umDateOfBirth: {dob}
umIdNumber: {id_number}
userPassword: {slappasswd(PASSWORDS[uid])}
"""


def bulk_name(index: int) -> str:
    return f"u{index:06d}"


def bulk_person(index: int) -> dict[str, str]:
    """What the directory holds for bulk user `index` (the benchmark's local rows match it)."""
    name = bulk_name(index)
    return {"uid": name, "cn": f"User {index}", "givenName": "User", "sn": str(index),
            "mail": f"{name}@um.edu.mo", "employeeType": "student"}


def _bulk_ldif(count: int) -> str:
    """`count` people with one shared password: one hash, made once."""
    hashed = slappasswd(BULK_PASSWORD)
    return "\n".join(
        f"dn: uid={bulk_name(i)},{PEOPLE}\nobjectClass: inetOrgPerson\n"
        + "".join(f"{key}: {value}\n" for key, value in bulk_person(i).items())
        + f"userPassword: {hashed}\n" for i in range(count))


def _data_ldif() -> str:
    return "\n".join([
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: um\no: UM\n",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\nou: services\n",
        f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: um2fa\nuserPassword: {slappasswd(SERVICE_PASSWORD)}\n",
        _person("alice", "Alice Chan", "alice@um.edu.mo", "student", "2001-02-03", "123A"),
        # bob: GeneralizedTime date of birth, the whole ID number, two roles
        _person("bob", "Bob Lei", "bob@um.edu.mo", "staff", "19990517000000Z", "Z123456(7)")
        + "employeeType: Alumni\n",
        # carol: a second entry whose uid starts like alice's, for the injection tests
        _person("carol", "Carol Alves", "carol@um.edu.mo", "student", "2000-01-01", "9999"),
        # the console's roles by group (UM2FA_ADMIN_GROUPS_*): bob is on the help desk
        f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n",
        f"dn: {HELPDESK_GROUP}\nobjectClass: groupOfNames\ncn: it-helpdesk\n"
        f"member: uid=bob,{PEOPLE}\n",
        f"dn: {ADMIN_GROUP}\nobjectClass: groupOfNames\ncn: it-admins\n"
        f"member: {SERVICE_DN}\n",
    ])


@dataclass
class SlapdServer:
    root: Path
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    bulk_users: int = 0
    log_level: str = "stats"  # slapd -d: "stats" (operations() reads it) or "0" (nothing)

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.pem"

    @property
    def wrong_ca_file(self) -> Path:
        return self.root / "wrong-ca.pem"

    @property
    def log_path(self) -> Path:
        return self.root / "slapd.log"

    def build(self) -> None:
        """Certificates, cn=config and the data, offline with slapadd."""
        if not shutil.which("slapd"):
            raise RuntimeError("slapd is not installed: run ./scripts/setup --test")
        self.root.mkdir(parents=True, exist_ok=True)
        ca_key, ca_cert = make_ca("UM 2FA test LDAP CA")
        key, cert = make_server_cert(ca_key, ca_cert)
        _wrong_key, wrong_cert = make_ca("Some other CA")
        self.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        self.wrong_ca_file.write_bytes(wrong_cert.public_bytes(serialization.Encoding.PEM))
        (self.root / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (self.root / "server.key").write_bytes(_pem_key(key))
        (self.root / "server.key").chmod(0o600)
        for sub in ("slapd.d", "data"):
            (self.root / sub).mkdir()
        (self.root / "config.ldif").write_text(_config_ldif(self.root))
        (self.root / "data.ldif").write_text(_data_ldif())
        self._run(["slapadd", "-n", "0", "-F", str(self.root / "slapd.d"),
                   "-l", str(self.root / "config.ldif")])
        self._run(["slapadd", "-n", "1", "-F", str(self.root / "slapd.d"),
                   "-l", str(self.root / "data.ldif")])
        if self.bulk_users:  # -q: no consistency checks (the data is ours, made just here)
            (self.root / "bulk.ldif").write_text(_bulk_ldif(self.bulk_users))
            self._run(["slapadd", "-q", "-n", "1", "-F", str(self.root / "slapd.d"),
                       "-l", str(self.root / "bulk.ldif")])

    @staticmethod
    def _run(args: list[str]) -> None:
        done = subprocess.run(args, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stderr[-2000:]}")

    def start(self) -> None:
        if not (self.root / "slapd.d").exists():
            self.build()
        log = open(self.log_path, "a")  # noqa: SIM115 - the child keeps it
        urls = f"{self.url}/ {self.ldaps_url}/"
        # -d stats: stay in the foreground and log connections, BINDs and SEARCHes
        # (-d 0: in the foreground, logging nothing per operation).
        self.process = subprocess.Popen(
            ["slapd", "-F", str(self.root / "slapd.d"), "-h", urls, "-d", self.log_level],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited: {self.log_path.read_text()[-3000:]}")
            if self._listening(self.port) and self._listening(self.tls_port):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("slapd did not listen within 15 s")

    @staticmethod
    def _listening(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def binds_of(self, dn: str) -> int:
        """How many BIND requests with this DN slapd has logged (each logs one `method=`
        line; a success adds a `mech=` line)."""
        needle = f'bind dn="{dn.lower()}" method='
        return sum(needle in line.lower() for line in self.log_path.read_text().splitlines())

    def operations(self) -> Counter:
        """What slapd has logged so far, by kind: connections (ACCEPT), BIND, SRCH and EXT
        (StartTLS) requests. Each is logged before it is answered, so a client that has its
        answer finds it counted."""
        found = _OPERATION.findall(self.log_path.read_text())
        return Counter(next(kind for kind in groups if kind) for groups in found)
