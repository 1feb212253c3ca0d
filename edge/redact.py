"""Credentials out of everything printed, logged or stored: `rtsp://admin:secret@host/x` becomes
`rtsp://admin:***@host/x`, and a bare token (`rtsp://token@host`) becomes `rtsp://***@host`.

Camera URLs carry passwords; on an appliance, stderr goes to journald and results to the fleet.
"""

from __future__ import annotations

import re
from typing import Any

_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^\s/@:]*)(?P<password>:[^\s/]*)?@"
)


def _mask(match: Any) -> str:
    if match.group("password") is not None:
        return f"{match.group('scheme')}{match.group('user')}:***@"
    return f"{match.group('scheme')}***@"


def redact(text: object) -> str:
    """`text` with the user-info of every URL in it masked."""
    return _USERINFO.sub(_mask, str(text))
