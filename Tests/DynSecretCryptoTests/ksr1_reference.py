#!/usr/bin/env python3
"""Independent KSR1 reader and writer, written from docs/at-rest-format.md with the `cryptography` package.

    ksr1_reference.py decrypt RECORD [--kek KID:KEY]... [--passphrase-file F] [--namespace NS] [--name N]
        prints {"context": {...}, "type": ..., "data": {key: base64}} as JSON, or "error CODE: message" and exit 1
    ksr1_reference.py seal --kek KID:KEY --namespace NS --name N [--uid U] [--generation G] [--store-id S]
                           [--type T] [--data KEY=BASE64]...      writes a record (random keys and nonces) to stdout
    ksr1_reference.py generate     prints the known-answer and negative vectors as JSON
    ksr1_reference.py check FILE   checks every vector in FILE; exit 1 on any mismatch
"""
import base64
import hashlib
import hmac
import json
import os
import struct
import sys
import unicodedata

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MIN_LOGN = 17
MAX_LOGN = 20


class Ksr1Error(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def hkdf(key, salt, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt or None, info=info).derive(key)


def lp16(b):
    return struct.pack(">H", len(b)) + b


class Reader:
    def __init__(self, data):
        self.data, self.off = data, 0

    def take(self, n, field):
        if len(self.data) - self.off < n:
            raise Ksr1Error("truncated", "truncated in the " + field)
        out = self.data[self.off:self.off + n]
        self.off += n
        return out

    def u8(self, f): return self.take(1, f)[0]
    def u16(self, f): return struct.unpack(">H", self.take(2, f))[0]
    def u32(self, f): return struct.unpack(">I", self.take(4, f))[0]
    def u64(self, f): return struct.unpack(">Q", self.take(8, f))[0]
    def lp16(self, f): return self.take(self.u16(f + " length"), f)


def parse(data):
    if data[:4] != b"KSR1":
        raise Ksr1Error("not-a-record", "bad magic")
    r = Reader(data)
    r.off = 4
    if r.u8("version") != 1:
        raise Ksr1Error("unsupported-version", "version")
    if r.u8("suite") != 1:
        raise Ksr1Error("unsupported-suite", "suite")
    ctx = {}
    for field in ("store_id", "namespace", "name", "uid"):
        raw = r.lp16(field)
        try:
            ctx[field] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Ksr1Error("malformed", field + " is not UTF-8")
    ctx["generation"] = r.u64("generation")
    ctx["created"] = r.u64("created")
    p_nonce = r.take(12, "payload nonce")
    ctx_bytes = data[:r.off]
    n = r.u8("slot count")
    if not 1 <= n <= 8:
        raise Ksr1Error("malformed", "slot count")
    slots = []
    for i in range(n):
        start = r.off
        t = r.u8("slot type")
        if t not in (1, 2, 3, 4):
            raise Ksr1Error("malformed", "slot type")
        kid = r.lp16("kid")
        params = r.lp16("params")
        salt = r.take(32, "salt")
        w_nonce = r.take(12, "slot nonce")
        wrapped = r.lp16("wrapped")
        if t == 1 and (len(kid) != 16 or params):
            raise Ksr1Error("malformed", "kek slot shape")
        if t == 2 and (kid or len(params) != 9):
            raise Ksr1Error("malformed", "passphrase slot shape")
        if len(wrapped) != 48:
            raise Ksr1Error("malformed", "wrapped size")
        prefix = bytes([t]) + lp16(kid) + lp16(params)
        slots.append(dict(type=t, kid=kid, params=params, salt=salt, nonce=w_nonce, wrapped=wrapped, prefix=prefix))
    if sum(1 for s in slots if s["type"] == 2) > 1:
        raise Ksr1Error("malformed", "more than one passphrase slot")
    mac_off = r.off
    mac = r.take(32, "mac")
    length = r.u32("payload length")
    remaining = len(data) - r.off
    if length > remaining:
        raise Ksr1Error("truncated", "payload")
    if length < remaining:
        raise Ksr1Error("malformed", "trailing bytes")
    if length < 256 + 16 or (length - 16) % 256:
        raise Ksr1Error("bad-payload-length", "payload length")
    return dict(ctx=ctx, ctx_bytes=ctx_bytes, p_nonce=p_nonce, slots=slots, header=data[:mac_off], mac=mac, ct=data[r.off:])


def decode_payload(pt):
    r = Reader(pt)
    try:
        typ = r.lp16("type").decode("utf-8")
        n = r.u32("count")
        data, prev, seen = {}, None, set()
        for _ in range(n):
            k = r.lp16("key")
            if prev is not None and not prev < k:
                raise Ksr1Error("payload-malformed", "keys not sorted and unique")
            # Keys that are the same text in different Unicode forms (NFC/NFD) are duplicates too.
            nfc = unicodedata.normalize("NFC", k.decode("utf-8"))
            if nfc in seen:
                raise Ksr1Error("payload-malformed", "Unicode-equivalent keys")
            seen.add(nfc)
            data[k.decode("utf-8")] = r.take(r.u32("value length"), "value")
            prev = k
    except Ksr1Error as e:
        if e.code == "truncated":
            raise Ksr1Error("payload-malformed", str(e))
        raise
    except UnicodeDecodeError:
        raise Ksr1Error("payload-malformed", "not UTF-8")
    pad = pt[r.off:]
    if len(pt) % 256 or len(pad) >= 256:
        raise Ksr1Error("payload-malformed", "padding length")
    if any(pad):
        raise Ksr1Error("padding", "non-zero padding")
    return typ, data


def open_record(data, keks=None, passphrase=None, expect=None):
    """keks: {kid bytes: key bytes}; passphrase: str; expect: dict of ctx fields that must match."""
    rec = parse(data)
    for k, v in (expect or {}).items():
        if rec["ctx"][k] != v:
            raise Ksr1Error("context-mismatch", k)
    keks = keks or {}
    failure = None
    for s in rec["slots"]:
        if s["type"] == 1 and s["kid"] in keks:
            wk = hkdf(keks[s["kid"]], s["salt"], b"ksr1 kek-wrap")
        elif s["type"] == 2 and passphrase is not None:
            log_n, r_, p_ = struct.unpack(">BII", s["params"])
            if log_n < MIN_LOGN or log_n > MAX_LOGN or r_ != 8 or p_ != 1:
                failure = Ksr1Error("scrypt-cost", "scrypt parameters")
                continue
            pw = unicodedata.normalize("NFC", passphrase).encode("utf-8")
            wk = Scrypt(salt=b"ksr1 scrypt" + s["salt"], length=32, n=2 ** log_n, r=8, p=1).derive(pw)
        else:
            continue
        try:
            dek = AESGCM(wk).decrypt(s["nonce"], s["wrapped"], rec["ctx_bytes"] + s["prefix"])
        except InvalidTag:
            failure = Ksr1Error("unwrap-failed", "slot")
            continue
        if len(dek) != 32:
            failure = Ksr1Error("unwrap-failed", "dek size")
            continue
        k_mac = hkdf(dek, b"", b"ksr1 header-mac")
        if not hmac.compare_digest(hmac.new(k_mac, rec["header"], hashlib.sha256).digest(), rec["mac"]):
            if s["type"] == 2:
                # A passphrase slot reports a wrong MAC exactly as a wrong passphrase.
                failure = Ksr1Error("unwrap-failed", "slot")
                continue
            raise Ksr1Error("header-mac", "header MAC")
        try:
            pt = AESGCM(hkdf(dek, b"", b"ksr1 payload")).decrypt(rec["p_nonce"], rec["ct"], rec["ctx_bytes"])
        except InvalidTag:
            raise Ksr1Error("payload-authentication", "payload")
        typ, values = decode_payload(pt)
        return rec["ctx"], typ, values
    if failure:
        raise failure
    raise Ksr1Error("no-usable-slot", "no slot opens")


def encode_payload(typ, data):
    out = lp16(typ.encode()) + struct.pack(">I", len(data))
    for k in sorted(data, key=lambda s: s.encode()):
        out += lp16(k.encode()) + struct.pack(">I", len(data[k])) + data[k]
    return out + bytes((-len(out)) % 256)


def seal(ctx, created, dek, p_nonce, slots, typ=None, data=None, raw_plaintext=None):
    """slots: list of dict(type=1, kid, kek, salt, nonce) or dict(type=2, passphrase, log_n, salt, nonce)."""
    c = b"KSR1\x01\x01"
    for f in ("store_id", "namespace", "name", "uid"):
        c += lp16(ctx.get(f, "").encode())
    c += struct.pack(">QQ", ctx.get("generation", 0), created) + p_nonce
    header = c + bytes([len(slots)])
    for s in slots:
        if s["type"] == 1:
            kid, params = s["kid"], b""
            wk = hkdf(s["kek"], s["salt"], b"ksr1 kek-wrap")
        else:
            kid, params = b"", struct.pack(">BII", s["log_n"], 8, 1)
            pw = unicodedata.normalize("NFC", s["passphrase"]).encode()
            wk = Scrypt(salt=b"ksr1 scrypt" + s["salt"], length=32, n=2 ** s["log_n"], r=8, p=1).derive(pw)
        prefix = bytes([s["type"]]) + lp16(kid) + lp16(params)
        wrapped = AESGCM(wk).encrypt(s["nonce"], dek, c + prefix)
        header += prefix + s["salt"] + s["nonce"] + lp16(wrapped)
    header += hmac.new(hkdf(dek, b"", b"ksr1 header-mac"), header, hashlib.sha256).digest()
    pt = raw_plaintext if raw_plaintext is not None else encode_payload(typ, data)
    ct = AESGCM(hkdf(dek, b"", b"ksr1 payload")).encrypt(p_nonce, pt, c)
    return header + struct.pack(">I", len(ct)) + ct


# ---- vectors -------------------------------------------------------------------------------------------------

def fixed(label, n):
    """Deterministic test bytes: SHA-256 chain of a label."""
    out, block = b"", label.encode()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return out[:n]


KID1, KEK1 = fixed("kid1", 16), fixed("kek1", 32)
KID2, KEK2 = fixed("kid2", 16), fixed("kek2", 32)
PASSPHRASE = "correct horse battery staple \u00e9"  # NFC form of é


def kek_slot(i, kid, kek):
    return dict(type=1, kid=kid, kek=kek, salt=fixed("salt%d" % i, 32), nonce=fixed("wnonce%d" % i, 12))


def generate():
    ctx = dict(store_id="0123456789abcdef0123456789abcdef", namespace="team-a", name="db-credentials",
               uid="6f1c2d3e-0000-4000-8000-123456789abc", generation=42)
    data = {"password": b"hunter2-CANARY", "username": b"admin", "ca.crt": bytes(range(256)) * 2}
    specs = [
        dict(name="one keyring slot", ctx=ctx, created=1764115200, dek=fixed("dek1", 32), p_nonce=fixed("pnonce1", 12),
             slots=[kek_slot(1, KID1, KEK1)], type="Opaque", data=data),
        dict(name="two keyring slots", ctx=ctx, created=1764115201, dek=fixed("dek2", 32), p_nonce=fixed("pnonce2", 12),
             slots=[kek_slot(1, KID1, KEK1), kek_slot(2, KID2, KEK2)], type="kubernetes.io/basic-auth",
             data={"password": b"p", "username": b"u"}),
        dict(name="keyring and passphrase slots", ctx=dict(namespace="default", name="empty"), created=0,
             dek=fixed("dek3", 32), p_nonce=fixed("pnonce3", 12),
             slots=[kek_slot(1, KID1, KEK1), dict(type=2, passphrase=PASSPHRASE, log_n=17, salt=fixed("salt3", 32), nonce=fixed("wnonce3", 12))],
             type="Opaque", data={}),
        dict(name="payload of exactly 256 bytes", ctx=dict(namespace="ns", name="n", generation=1), created=7,
             dek=fixed("dek4", 32), p_nonce=fixed("pnonce4", 12), slots=[kek_slot(4, KID2, KEK2)],
             type="Opaque", data={"k": bytes(256 - 2 - 6 - 4 - 2 - 1 - 4)}),
    ]
    positives = []
    for s in specs:
        rec = seal(s["ctx"], s["created"], s["dek"], s["p_nonce"], s["slots"], s["type"], s["data"])
        slots = []
        for sl in s["slots"]:
            d = dict(type=sl["type"], salt=sl["salt"].hex(), nonce=sl["nonce"].hex())
            if sl["type"] == 1:
                d.update(kid=sl["kid"].hex())
            else:
                d.update(passphrase=sl["passphrase"], logN=sl["log_n"])
            slots.append(d)
        positives.append(dict(
            name=s["name"], context=dict(dict(store_id="", uid="", generation=0), **s["ctx"]), created=s["created"],
            dek=s["dek"].hex(), payload_nonce=s["p_nonce"].hex(), slots=slots, type=s["type"],
            data={k: base64.b64encode(v).decode() for k, v in sorted(s["data"].items())}, record=rec.hex()))

    base = bytes.fromhex(positives[0]["record"])
    two = bytes.fromhex(positives[1]["record"])
    pw_rec = bytes.fromhex(positives[2]["record"])
    p = parse(base)
    ctx_len = len(p["ctx_bytes"])
    slot_off = ctx_len + 1  # first slot
    # offsets inside the first record
    store_off = 6 + 2
    ns_off = store_off + len(ctx["store_id"]) + 2
    name_off = ns_off + len(ctx["namespace"]) + 2
    uid_off = name_off + len(ctx["name"]) + 2
    gen_off = uid_off + len(ctx["uid"])
    created_off = gen_off + 8
    pnonce_off = created_off + 8
    kid_off = slot_off + 1 + 2
    salt_off = kid_off + 16 + 2
    wnonce_off = salt_off + 32
    wrapped_off = wnonce_off + 12 + 2
    mac_off = wrapped_off + 48
    len_off = mac_off + 32
    ct_off = len_off + 4

    def flip(b, off, bit=0):
        b = bytearray(b)
        b[off] ^= 1 << bit
        return bytes(b)

    neg = []

    def add(name, rec, error, keks=("1",), passphrase=None, expect=None):
        neg.append(dict(name=name, record=rec.hex(), keys=list(keks), passphrase=passphrase, expect=expect or {}, error=error))

    add("magic bit flipped", flip(base, 0), "not-a-record")
    add("version bit flipped", flip(base, 4), "unsupported-version")
    add("suite bit flipped", flip(base, 5), "unsupported-suite")
    add("store id bit flipped", flip(base, store_off), "unwrap-failed")
    add("store id bit flipped, store expected", flip(base, store_off), "context-mismatch", expect=dict(store_id=ctx["store_id"]))
    add("namespace bit flipped", flip(base, ns_off), "unwrap-failed")
    add("wrong namespace expected", base, "context-mismatch", expect=dict(namespace="team-b"))
    add("name bit flipped", flip(base, name_off + 3), "unwrap-failed")
    add("wrong name expected", base, "context-mismatch", expect=dict(name="other"))
    add("uid bit flipped", flip(base, uid_off), "unwrap-failed")
    add("generation bit flipped", flip(base, gen_off + 7), "unwrap-failed")
    add("created bit flipped", flip(base, created_off + 7), "unwrap-failed")
    add("payload nonce bit flipped", flip(base, pnonce_off), "unwrap-failed")
    add("namespace length bit flipped", flip(base, ns_off - 1, 2), "truncated")
    add("slot count zero", flip(base, ctx_len, 0), "malformed")
    add("slot count bit flipped", flip(base, ctx_len, 3), "malformed")
    add("slot count bit flipped to three", flip(base, ctx_len, 1), "malformed")
    add("slot type bit flipped", flip(base, slot_off, 2), "malformed")
    add("slot type changed to reserved KMS", flip(base, slot_off, 1), "no-usable-slot")
    add("key id bit flipped", flip(base, kid_off), "no-usable-slot")
    add("slot salt bit flipped", flip(base, salt_off), "unwrap-failed")
    add("slot nonce bit flipped", flip(base, wnonce_off), "unwrap-failed")
    add("wrapped key bit flipped", flip(base, wrapped_off), "unwrap-failed")
    add("wrapped key tag bit flipped", flip(base, wrapped_off + 47), "unwrap-failed")
    add("header MAC bit flipped", flip(base, mac_off), "header-mac")
    add("payload length bit flipped", flip(base, len_off + 3), "truncated")
    add("payload length bit flipped down", flip(base, len_off + 2, 0), "malformed")
    add("payload length high bit flipped", flip(base, len_off), "truncated")
    add("ciphertext bit flipped", flip(base, ct_off), "payload-authentication")
    add("tag bit flipped", flip(base, len(base) - 1), "payload-authentication")
    add("truncated by one byte", base[:-1], "truncated")
    add("truncated inside the header", base[:40], "truncated")
    add("empty", b"", "not-a-record")
    add("short tag (4 bytes cut, length adjusted)",
        base[:len_off] + struct.pack(">I", len(base) - ct_off - 4) + base[ct_off:-4], "bad-payload-length")
    add("trailing byte", base + b"\x00", "malformed")
    add("unknown key only", base, "no-usable-slot", keks=("2",))
    add("wrong key bytes for the kid", base, "unwrap-failed", keks=("1wrong",))
    # Two slots swapped: each still unwraps the same DEK, but the MAC covers their order.
    SLOT = 1 + 2 + 16 + 2 + 32 + 12 + 2 + 48  # a keyring slot
    tp = parse(two)
    s1 = two[len(tp["ctx_bytes"]) + 1: len(tp["ctx_bytes"]) + 1 + SLOT]
    s2 = two[len(tp["ctx_bytes"]) + 1 + SLOT: len(tp["ctx_bytes"]) + 1 + 2 * SLOT]
    swapped = two[:len(tp["ctx_bytes"]) + 1] + s2 + s1 + two[len(tp["ctx_bytes"]) + 1 + 2 * SLOT:]
    add("slots swapped", swapped, "header-mac")
    # A slot moved in from another record (same keys): its wrapping is bound to the other record's context.
    add("slot transplanted from another record", base[:slot_off] + s1 + base[slot_off + SLOT:], "unwrap-failed")
    # Payloads that authenticate but are not canonical.
    c0 = dict(namespace="ns", name="n")
    good = encode_payload("Opaque", {"a": b"1"})
    bad_pad = bytearray(good)
    bad_pad[-1] = 1
    add("non-zero padding", seal(c0, 0, fixed("dek5", 32), fixed("pn5", 12), [kek_slot(5, KID1, KEK1)], raw_plaintext=bytes(bad_pad)), "padding")
    unsorted = lp16(b"Opaque") + struct.pack(">I", 2) + lp16(b"b") + struct.pack(">I", 0) + lp16(b"a") + struct.pack(">I", 0)
    unsorted += bytes((-len(unsorted)) % 256)
    add("unsorted data keys", seal(c0, 0, fixed("dek6", 32), fixed("pn6", 12), [kek_slot(6, KID1, KEK1)], raw_plaintext=unsorted), "payload-malformed")
    dup = lp16(b"Opaque") + struct.pack(">I", 2) + lp16(b"a") + struct.pack(">I", 0) + lp16(b"a") + struct.pack(">I", 0)
    dup += bytes((-len(dup)) % 256)
    add("duplicate data keys", seal(c0, 0, fixed("dek7", 32), fixed("pn7", 12), [kek_slot(7, KID1, KEK1)], raw_plaintext=dup), "payload-malformed")
    add("padding of a whole block", seal(c0, 0, fixed("dek8", 32), fixed("pn8", 12), [kek_slot(8, KID1, KEK1)], raw_plaintext=good + bytes(256)), "payload-malformed")
    # Passphrase slot: the scrypt parameters sit at the passphrase slot's params field.
    SLOT = 1 + 2 + 16 + 2 + 32 + 12 + 2 + 48
    pp = parse(pw_rec)
    pslot = len(pp["ctx_bytes"]) + 1 + SLOT  # after the keyring slot
    params_off = pslot + 1 + 2 + 2  # type, lp16(kid="") , params length
    add("oversized scrypt cost (logN 21)", flip(pw_rec, params_off, 2), "scrypt-cost", keks=(), passphrase=PASSPHRASE)
    add("scrypt r changed", flip(pw_rec, params_off + 4, 4), "scrypt-cost", keks=(), passphrase=PASSPHRASE)
    add("wrong passphrase", pw_rec, "unwrap-failed", keks=(), passphrase="wrong")
    add("no keys", pw_rec, "no-usable-slot", keks=())
    add("weak scrypt cost (logN 16)", flip(pw_rec, params_off, 0), "scrypt-cost", keks=(), passphrase=PASSPHRASE)
    # The keyring slot's wrapped key changed: the passphrase slot still unwraps, the MAC then fails; a passphrase
    # slot reports that as unwrap-failed, like a wrong passphrase.
    add("header changed, opened by passphrase", flip(pw_rec, pslot - 48 - 2 + 2, 0), "unwrap-failed", keks=(), passphrase=PASSPHRASE)
    two_pw = seal(dict(namespace="default", name="empty"), 0, fixed("dek9", 32), fixed("pn9", 12),
                  [dict(type=2, passphrase=PASSPHRASE, log_n=17, salt=fixed("salt9", 32), nonce=fixed("wnonce9", 12)),
                   dict(type=2, passphrase=PASSPHRASE, log_n=17, salt=fixed("salt10", 32), nonce=fixed("wnonce10", 12))], "Opaque", {})
    add("two passphrase slots", two_pw, "malformed", keks=(), passphrase=PASSPHRASE)
    nfd_nfc = lp16(b"Opaque") + struct.pack(">I", 2)
    for key in ("e\u0301".encode(), "\u00e9".encode()):  # NFD then NFC spelling of "é": sorted, distinct bytes
        nfd_nfc += lp16(key) + struct.pack(">I", 1) + b"x"
    nfd_nfc += bytes((-len(nfd_nfc)) % 256)
    add("Unicode-equivalent data keys", seal(c0, 0, fixed("dek11", 32), fixed("pn11", 12), [kek_slot(11, KID1, KEK1)], raw_plaintext=nfd_nfc), "payload-malformed")
    return dict(
        comment="KSR1 vectors generated by ksr1_reference.py; see docs/at-rest-format.md",
        keys={"1": dict(kid=KID1.hex(), kek=KEK1.hex()), "2": dict(kid=KID2.hex(), kek=KEK2.hex()),
              "1wrong": dict(kid=KID1.hex(), kek=KEK2.hex())},
        positive=positives, negative=neg)


def check(vectors):
    keys = {n: (bytes.fromhex(k["kid"]), bytes.fromhex(k["kek"])) for n, k in vectors["keys"].items()}
    kekmap = {keys["1"][0]: keys["1"][1], keys["2"][0]: keys["2"][1]}
    failures = 0
    for v in vectors["positive"]:
        slots = []
        for s in v["slots"]:
            d = dict(type=s["type"], salt=bytes.fromhex(s["salt"]), nonce=bytes.fromhex(s["nonce"]))
            if s["type"] == 1:
                d.update(kid=bytes.fromhex(s["kid"]), kek=kekmap[bytes.fromhex(s["kid"])])
            else:
                d.update(passphrase=s["passphrase"], log_n=s["logN"])
            slots.append(d)
        data = {k: base64.b64decode(x) for k, x in v["data"].items()}
        rec = seal(v["context"], v["created"], bytes.fromhex(v["dek"]), bytes.fromhex(v["payload_nonce"]), slots, v["type"], data)
        if rec.hex() != v["record"]:
            print("FAIL seal:", v["name"])
            failures += 1
        ctx, typ, got = open_record(bytes.fromhex(v["record"]), kekmap)
        if typ != v["type"] or got != data or ctx["namespace"] != v["context"]["namespace"]:
            print("FAIL open:", v["name"])
            failures += 1
    for v in vectors["negative"]:
        keks = dict(keys[n] for n in v["keys"])
        try:
            open_record(bytes.fromhex(v["record"]), keks, v["passphrase"], v["expect"])
            print("FAIL (accepted):", v["name"])
            failures += 1
        except Ksr1Error as e:
            if e.code != v["error"]:
                print("FAIL:", v["name"], "got", e.code, "want", v["error"])
                failures += 1
    print("checked %d positive and %d negative vectors, %d failures" % (len(vectors["positive"]), len(vectors["negative"]), failures))
    return failures == 0


def parse_keks(args):
    keks = {}
    for a in args:
        kid, key = a.split(":")
        keks[bytes.fromhex(kid)] = bytes.fromhex(key)
    return keks


def main(argv):
    cmd = argv[0] if argv else ""
    opts, rest = {}, []
    i = 1
    while i < len(argv):
        if argv[i].startswith("--"):
            opts.setdefault(argv[i][2:], []).append(argv[i + 1])
            i += 2
        else:
            rest.append(argv[i])
            i += 1
    if cmd == "generate":
        json.dump(generate(), sys.stdout, indent=1)
        print()
        return 0
    if cmd == "check":
        with open(rest[0]) as f:
            return 0 if check(json.load(f)) else 1
    if cmd == "decrypt":
        with open(rest[0], "rb") as f:
            data = f.read()
        pw = None
        if "passphrase-file" in opts:
            with open(opts["passphrase-file"][0], encoding="utf-8") as f:
                pw = f.read().rstrip("\n")
        expect = {k: opts[k][0] for k in ("namespace", "name") if k in opts}
        try:
            ctx, typ, values = open_record(data, parse_keks(opts.get("kek", [])), pw, expect)
        except Ksr1Error as e:
            print("error %s: %s" % (e.code, e))
            return 1
        json.dump(dict(context=ctx, type=typ, data={k: base64.b64encode(v).decode() for k, v in sorted(values.items())}), sys.stdout, sort_keys=True)
        print()
        return 0
    if cmd == "seal":
        (kid, kek), = parse_keks(opts["kek"]).items()
        ctx = dict(store_id=opts.get("store-id", [""])[0], namespace=opts["namespace"][0], name=opts["name"][0],
                   uid=opts.get("uid", [""])[0], generation=int(opts.get("generation", ["0"])[0]))
        data = {}
        for kv in opts.get("data", []):
            k, v = kv.split("=", 1)
            data[k] = base64.b64decode(v)
        rec = seal(ctx, 1764115200, os.urandom(32), os.urandom(12),
                   [dict(type=1, kid=kid, kek=kek, salt=os.urandom(32), nonce=os.urandom(12))], opts.get("type", ["Opaque"])[0], data)
        sys.stdout.buffer.write(rec)
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
