"""The SNMPv3 USM ciphers and digests: the agent's only import of the ``cryptography`` package.

:mod:`agent.snmp.usm` (pure) says *what* to compute; this module computes it:

* HMAC (RFC 3414 6/7, RFC 7860) with the standard library's one-shot ``hmac.digest`` (a C call, the
  cheapest HMAC Python has), truncated to the protocol's length by the caller;
* AES in CFB mode with a 128-bit segment (RFC 3826; AES-192/256 the same with longer keys);
* DES in CBC mode (RFC 3414 8): ``cryptography`` has no single DES, but triple DES with the DES key
  three times (K1 = K2 = K3) *is* DES (encrypt, decrypt, encrypt with one key), which is what pysnmp
  does too. ``TripleDES`` and the CFB mode live under ``cryptography.hazmat.decrepit`` in newer
  versions (43 and 47; their old places warn, and go in 48/49): both places are tried.

Importing this module imports ``cryptography`` (a few MB): :mod:`agent.snmp.engine` imports the SNMPv3
session, and so this module, only when the agent has an SNMPv3 device.
"""

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.modes import CBC

try:  # cryptography >= 43 (TripleDES), >= 47 (CFB): their old places warn, then go
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES
try:
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB


def aes_cfb_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), CFB(iv)).encryptor()
    return encryptor.update(plaintext) + encryptor.finalize()


def aes_cfb_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), CFB(iv)).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


def des_cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """DES-CBC of ``plaintext`` (a multiple of 8 bytes: the caller pads) with an 8-byte ``key``."""
    encryptor = Cipher(TripleDES(key * 3), CBC(iv)).encryptor()
    return encryptor.update(plaintext) + encryptor.finalize()


def des_cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """DES-CBC decryption (``ciphertext`` a multiple of 8 bytes) with an 8-byte ``key``."""
    decryptor = Cipher(TripleDES(key * 3), CBC(iv)).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


# ------------------------------------------------------------------------------ USM privacy and auth


def encrypt(cipher: str, key: bytes, boots: int, engine_time: int, salt: bytes, plaintext: bytes) -> bytes:
    """The encryptedPDU of ``plaintext`` (a ScopedPDU): ``cipher`` "des" (RFC 3414 8.1.1.1: key = first 8
    bytes, IV = salt XOR pre-IV, the next 8; the plaintext zero-padded to a multiple of 8) or "aes"
    (RFC 3826 3.1.2.1: IV = boots, time, salt; no padding)."""
    if cipher == "aes":
        return aes_cfb_encrypt(key, _aes_iv(boots, engine_time, salt), plaintext)
    padding = -len(plaintext) % 8
    return des_cbc_encrypt(key[:8], _des_iv(key, salt), plaintext + bytes(padding))


def decrypt(cipher: str, key: bytes, boots: int, engine_time: int, salt: bytes, ciphertext: bytes) -> bytes:
    """The plaintext of an encryptedPDU (DES: with its padding); ValueError when it cannot be decrypted
    (a salt of the wrong size, DES ciphertext not a multiple of 8 bytes)."""
    if len(salt) != 8:
        raise ValueError(f"privacy parameters of {len(salt)} bytes, not 8")
    if cipher == "aes":
        return aes_cfb_decrypt(key, _aes_iv(boots, engine_time, salt), ciphertext)
    if len(ciphertext) % 8:
        raise ValueError("DES ciphertext is not a multiple of 8 bytes")
    return des_cbc_decrypt(key[:8], _des_iv(key, salt), ciphertext)


def _aes_iv(boots: int, engine_time: int, salt: bytes) -> bytes:
    return boots.to_bytes(4, "big") + engine_time.to_bytes(4, "big") + salt


def _des_iv(key: bytes, salt: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(salt, key[8:16], strict=True))


def sign(hash_name: str, key: bytes, length: int, message: bytes, offset: int) -> bytes:
    """``message`` with its msgAuthenticationParameters (``length`` zero bytes at ``offset``) replaced by
    the truncated HMAC of the whole message (RFC 3414 6.3.1, 7.3.1; RFC 7860 4.2.1)."""
    mac = hmac.digest(key, message, hash_name)[:length]
    return message[:offset] + mac + message[offset + length:]


def verify(hash_name: str, key: bytes, message: bytes, offset: int, received: bytes) -> bool:
    """True when ``received`` (the msgAuthenticationParameters found at ``offset``) is the truncated HMAC
    of ``message`` with those bytes zeroed (RFC 3414 6.3.2, 7.3.2)."""
    length = len(received)
    zeroed = message[:offset] + bytes(length) + message[offset + length:]
    return hmac.compare_digest(hmac.digest(key, zeroed, hash_name)[:length], received)
