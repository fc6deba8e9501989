"""The words and number formats of the status pages (collector/status_pages.py), in Vietnamese with
English alongside where useful. Pure; the page script (collector/status_assets.py) gets the same texts
as JSON, so a value refreshed in the browser reads exactly as the server rendered it.
"""

from __future__ import annotations

import math

from hatang.vietnamese_numbers import vi_decimal

# state -> (Vietnamese, English), per kind of thing
STATES: dict[str, dict[str, tuple[str, str]]] = {
    "office": {"ok": ("Bình thường", "OK"), "warning": ("Có sự cố", "problem"),
               "offline": ("Mất kết nối", "offline"), "unknown": ("Chưa kết nối", "never seen")},
    "device": {"up": ("Hoạt động", "up"), "down": ("Không trả lời", "down"),
               "stale": ("Không có dữ liệu mới", "stale"), "pending": ("Chưa có dữ liệu", "pending")},
    "link": {"up": ("Thông", "up"), "down": ("Mất đường truyền", "down"), "unknown": ("Không rõ", "unknown")},
    "agent": {"online": ("Trực tuyến", "online"), "offline": ("Ngoại tuyến", "offline")},
    "oper": {"up": ("Hoạt động", "up"), "down": ("Ngắt", "down"), "testing": ("Kiểm tra", "testing"),
             "unknown": ("Không rõ", "unknown"), "dormant": ("Chờ", "dormant"),
             "notPresent": ("Không có", "not present"),
             "lowerLayerDown": ("Lớp dưới ngắt", "lower layer down")},
}
ROLES = {"datacenter": "Trung tâm dữ liệu", "department": "Sở, ngành", "district": "Khu vực (huyện cũ)",
         "commune": "Xã, phường", "other": "Khác"}
NO_ZONE = "Cấp tỉnh và đơn vị không thuộc khu vực"
DASH = "–"


def state_text(kind: str, state: str) -> str:
    return STATES.get(kind, {}).get(state, (state, state))[0]


def _scaled(value: float, units: tuple[str, ...], step: float) -> str:
    unit = 0
    while abs(value) >= step and unit < len(units) - 1:
        value /= step
        unit += 1
    digits = 0 if unit == 0 or abs(value) >= 100 else 1
    return f"{vi_decimal(value, digits)} {units[unit]}"


def bits_per_second(value: float | None) -> str:
    """``12,3 Mbit/s``; a dash when unknown."""
    if value is None or not math.isfinite(value):
        return DASH
    return _scaled(value, ("bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"), 1000.0)


def size_bytes(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    return _scaled(value, ("B", "kB", "MB", "GB", "TB"), 1000.0)


def age(seconds: float | None) -> str:
    """``12 giây trước``: how long ago."""
    if seconds is None or not math.isfinite(seconds):
        return DASH
    if seconds < 2:
        return "vừa xong"
    return f"{duration(seconds)} trước"


def duration(seconds: float | None) -> str:
    """``3 ngày 4 giờ``, ``5 phút 12 giây``: the two largest units."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return DASH
    total = int(seconds)
    parts = [(total // 86400, "ngày"), (total % 86400 // 3600, "giờ"), (total % 3600 // 60, "phút"),
             (total % 60, "giây")]
    first = next((i for i, (n, _) in enumerate(parts) if n), 3)
    shown = [f"{n} {unit}" for n, unit in parts[first:first + 2] if n]
    return " ".join(shown) or "0 giây"


def number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    return vi_decimal(value, 0 if value == int(value) else 2)


def percent(ratio: float | None) -> str:
    if ratio is None or not math.isfinite(ratio):
        return DASH
    return f"{vi_decimal(ratio * 100, 0 if ratio * 100 == int(ratio * 100) else 1)} %"


def milliseconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return DASH
    return f"{vi_decimal(seconds * 1000, 1)} ms"
