"""Errors the simulator answers with, in the shape and with the codes Dataverse uses."""

from __future__ import annotations


class DataverseError(Exception):
    """An error answered as ``{"error": {"code": ..., "message": ...}}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


# Codes as Dataverse reports them.
QUERY_SYNTAX = "0x80060888"  # malformed or unsupported query option
NOT_FOUND = "0x80040217"  # record does not exist
DUPLICATE_KEY = "0x80040237"  # a record with that key exists already
PRECONDITION_FAILED = "0x80060882"  # If-Match etag does not match
VALIDATION = "0x80044331"  # attribute value fails validation (length, range)
OPTION_OUT_OF_RANGE = "0x8004431a"  # option set value not defined
INVALID_ARGUMENT = "0x80040203"  # bad argument, unknown property in a body
UNAUTHORIZED = "0x80072560"  # missing or invalid bearer token
THROTTLED = "0x80072322"  # service protection limit: number of requests
EXECUTION_TIME_LIMIT = "0x80072321"  # service protection limit: combined execution time
CONCURRENCY_LIMIT = "0x80072326"  # service protection limit: concurrent requests
UNEXPECTED = "0x80040216"  # unexpected server error
CHANGE_TRACKING_NOT_ENABLED = "0x80072491"  # ChangeTrackingNotEnabledForEntity
EXPIRED_VERSION_STAMP = "0x80044352"  # ExpiredVersionStamp: a delta link too old


def bad_query(message: str) -> DataverseError:
    return DataverseError(400, QUERY_SYNTAX, message)


def invalid_body(message: str) -> DataverseError:
    return DataverseError(400, INVALID_ARGUMENT, message)


def no_segment(segment: str) -> DataverseError:
    return DataverseError(404, "0x8006088a", f"Resource not found for the segment '{segment}'.")
