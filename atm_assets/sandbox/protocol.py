"""Tushare's wire protocol: result codes, the service's messages and the JSON envelope."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

DEFAULT_TOKEN = "sandbox-token"

CODE_BAD_TOKEN = 40101
CODE_FORBIDDEN = 40203
CODE_UNKNOWN_API = -2001
CODE_BAD_PARAMS = -2002
MSG_BAD_TOKEN = "您的token不对，请确认。"
_DOC_LINK = "权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"
DEFAULT_RATE_LIMIT_IN_MESSAGE = 500

_HTTP_REASONS = {
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
}


def rate_limit_message(per_minute: int) -> str:
    return f"抱歉，您每分钟最多访问该接口{per_minute}次，{_DOC_LINK}"


def daily_quota_message(per_day: int) -> str:
    return f"抱歉，您每天最多访问该接口{per_day}次，{_DOC_LINK}"


def no_permission_message(api_name: str) -> str:
    return f"抱歉，您没有接口({api_name})访问权限，{_DOC_LINK}"


def unknown_api_message(api_name: str) -> str:
    return f"api名称错误: {api_name}"


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    code: int | None = None
    rows: int | None = None
    has_more: bool | None = None


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def api_payload(code: int, msg: str, data: Any) -> dict[str, Any]:
    return {"request_id": str(uuid.uuid4()), "code": code, "msg": msg, "data": data}


def api_error(code: int, msg: str) -> Answer:
    return Answer(200, json_bytes(api_payload(code, msg, None)), code=code)


def token_key(token: object) -> str:
    # Rate windows are per token, but the token itself is never kept around.
    return hashlib.sha256(str(token).encode()).hexdigest()[:16]


def http_error_page(status: int) -> bytes:
    reason = _HTTP_REASONS.get(status, "Error")
    return (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()
