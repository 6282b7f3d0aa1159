"""The OpenAPI 3.1 document of the archivist API, served at ``/api/v1/openapi.json``.

A test compares its paths with the routes the app serves and validates real answers
against its schemas, so it cannot drift from the code unnoticed."""

from __future__ import annotations

import copy
from typing import Any

from server_bridge.review.service import (
    AUDIT_MAX_LIMIT,
    EVENTS_MAX_LIMIT,
    MAX_TS,
    SEARCH_MAX_LIMIT,
    SEARCH_MAX_QUERY_CHARS,
)

_NULLABLE_STR: dict[str, Any] = {"type": ["string", "null"]}
_NULLABLE_INT: dict[str, Any] = {"type": ["integer", "null"]}
_NULLABLE_OBJ: dict[str, Any] = {"type": ["object", "null"]}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): {"$ref": f"#/components/responses/E{code}"} for code in codes}


def _param(name: str, where: str, schema: dict[str, Any], description: str,
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path",
            "schema": schema, "description": description}


_ROOM_ID = _param("room_id", "path", {"type": "string", "maxLength": 255}, "!room:server")
_EVENT_ID = _param("event_id", "path", {"type": "string", "maxLength": 255}, "$event id")
_PURPOSE = _param("X-Rijkschat-Purpose", "header", {"type": "string", "maxLength": 200},
                  "why the archivist reads (e.g. a Woo request number); access-logged")

_WOO_SPAN: dict[str, Any] = {
    "type": "object",
    "required": ["start", "end", "ground"],
    "additionalProperties": False,
    "properties": {
        "start": {"type": "integer", "minimum": 0,
                  "description": "first withheld character (code point offset in the text)"},
        "end": {"type": "integer", "minimum": 1, "description": "one past the last one"},
        "ground": {"type": "string", "description": "a ground code such as 5.1.2e"},
    },
}
_DECISION: dict[str, Any] = {"type": "string",
                             "enum": ["openbaar", "deels_openbaar", "niet_openbaar"]}
_REQUEST_ID = _param("request_id", "path", {"type": "string", "maxLength": 64},
                     "the Woo request's id")

_SCHEMAS: dict[str, Any] = {
    "WooSpan": _WOO_SPAN,
    "WooGround": {
        "type": "object",
        "required": ["code", "article", "title", "description", "absolute"],
        "properties": {"code": {"type": "string"}, "article": {"type": "string"},
                       "title": {"type": "string"}, "description": {"type": "string"},
                       "absolute": {"type": "boolean"}},
    },
    "WooRequest": {
        "type": "object",
        "required": ["id", "reference", "title", "received", "rooms", "from_ts", "to_ts",
                     "query", "created_by", "created_ts"],
        "properties": {
            "id": {"type": "string"},
            "reference": {"type": "string"},
            "title": {"type": "string"},
            "received": {"type": "string", "format": "date"},
            "rooms": {"type": "array", "items": {"type": "string"}},
            "from_ts": _NULLABLE_INT,
            "to_ts": _NULLABLE_INT,
            "query": _NULLABLE_STR,
            "created_by": {"type": "string"},
            "created_ts": {"type": "integer"},
        },
    },
    "WooAssessment": {
        "type": "object",
        "required": ["seq", "event_id", "decision", "grounds", "spans", "note", "assessed_by",
                     "assessed_ts"],
        "properties": {
            "seq": {"type": "integer", "description": "position in the Woo log"},
            "event_id": {"type": "string"},
            "decision": _DECISION,
            "grounds": {"type": "array", "items": {"type": "string"}},
            "spans": {"type": "array", "items": {"$ref": "#/components/schemas/WooSpan"}},
            "note": _NULLABLE_STR,
            "assessed_by": {"type": "string"},
            "assessed_ts": {"type": "integer"},
        },
    },
    "WooSuggestion": {
        "type": "object",
        "description": "a suggested span (personal data, ground 5.1.2e); only a suggestion: "
                       "never stored until the archivist includes it in an assessment",
        "required": ["start", "end", "kind", "ground", "reason", "text"],
        "properties": {
            "start": {"type": "integer", "minimum": 0},
            "end": {"type": "integer", "minimum": 1},
            "kind": {"type": "string", "enum": ["email", "telefoon", "iban", "bsn", "naam"]},
            "ground": {"type": "string", "enum": ["5.1.2e"]},
            "reason": {"type": "string", "description": "why (Dutch)"},
            "text": {"type": "string", "description": "the text the span would withhold"},
        },
    },
    "WooDocument": {
        "type": "object",
        "required": ["event_id", "room_id", "sender", "origin_server_ts", "type", "kind",
                     "text", "assessment", "history", "suggestions"],
        "properties": {
            "event_id": {"type": "string"},
            "room_id": {"type": "string"},
            "sender": {"type": "string"},
            "origin_server_ts": {"type": "integer"},
            "type": {"type": "string"},
            "kind": {"type": "string", "enum": ["chatbericht", "bijlage", "bewerking"]},
            "msgtype": _NULLABLE_STR,
            "text": {"type": "string", "description": "the plain body spans refer to"},
            "decryption": {"type": "string"},
            "has_attachment": {"type": "boolean"},
            "replaces": _NULLABLE_STR,
            "assessment": {"oneOf": [{"$ref": "#/components/schemas/WooAssessment"},
                                     {"type": "null"}]},
            "history": {"type": "array",
                        "items": {"$ref": "#/components/schemas/WooAssessment"}},
            "suggestions": {"type": "array",
                            "items": {"$ref": "#/components/schemas/WooSuggestion"}},
        },
    },
    "Error": {
        "type": "object",
        "required": ["errcode", "error"],
        "properties": {"errcode": {"type": "string"}, "error": {"type": "string"}},
    },
    "Room": {
        "type": "object",
        "required": ["room_id", "name", "members", "key_officials", "event_count", "first_ts",
                     "last_ts", "undecryptable", "retention", "legal_hold"],
        "properties": {
            "room_id": {"type": "string"},
            "name": _NULLABLE_STR,
            "members": {"type": "array", "items": {"type": "string"}},
            "key_officials": {"type": "array", "items": {"type": "string"}},
            "event_count": {"type": "integer"},
            "first_ts": _NULLABLE_INT,
            "last_ts": _NULLABLE_INT,
            "undecryptable": {"type": "integer"},
            "retention": {"type": "string", "description": "'bewaren' or 'Ny' (N years)"},
            "legal_hold": {"type": "boolean"},
        },
    },
    "Event": {
        "type": "object",
        "required": ["event_id", "room_id", "sender", "sender_device", "origin_server_ts",
                     "type", "content", "decryption", "relates_to", "redacted_by", "edits"],
        "properties": {
            "event_id": {"type": "string"},
            "room_id": {"type": "string"},
            "sender": {"type": "string"},
            "sender_device": _NULLABLE_STR,
            "origin_server_ts": {"type": "integer"},
            "type": {"type": "string"},
            "state_key": _NULLABLE_STR,
            "content": {
                "type": ["object", "null"],
                "description": "the decrypted content, the original even when later redacted; "
                "null once destroyed after retention",
            },
            "decryption": {"enum": ["decrypted", "plaintext", "undecryptable"]},
            "late_decryption": {"type": "boolean"},
            "relates_to": _NULLABLE_OBJ,
            "redacted_by": {"type": ["string", "null"], "description": "the redaction event"},
            "edits": {"type": "array", "items": {"type": "string"},
                      "description": "event ids of the m.replace edits, in order"},
            "reactions": {"type": "array", "items": {"type": "string"}},
            "has_attachment": {"type": "boolean"},
            "destroyed": {"type": "boolean"},
            "key_provenance": {
                "enum": ["room_key", "imported", None],
                "description": "for decrypted events: 'room_key' (received over Olm from the "
                "sender's device) or 'imported' (from a key export, a weaker origin)",
            },
            "imported_key": {
                "type": ["object", "null"],
                "description": "who imported the key (imported_by), when (imported_at, ms), "
                "the export file's SHA-256 (file_sha256) and how (via: cli or review)",
            },
        },
    },
    "KeyImport": {
        "type": "object",
        "required": ["keys_read", "keys_used", "events_decrypted", "ignored"],
        "properties": {
            "keys_read": {"type": "integer", "description": "sessions in the file"},
            "keys_used": {"type": "integer",
                          "description": "sessions imported into the archiver's key store"},
            "events_decrypted": {"type": "integer",
                                 "description": "archived undecryptable events now decrypted"},
            "ignored": {"type": "object", "additionalProperties": {"type": "integer"},
                        "description": "sessions not used, counted per reason"},
        },
    },
    "EventPage": {
        "type": "object",
        "required": ["events", "next"],
        "properties": {
            "events": {"type": "array", "items": _ref("Event")},
            "next": {"type": ["string", "null"],
                     "description": "pass as `from` for the next page; null at the end"},
        },
    },
    "SearchHit": {
        "type": "object",
        "required": ["event", "room", "terms"],
        "properties": {
            "event": _ref("Event"),
            "room": {
                "type": "object",
                "required": ["room_id", "name"],
                "properties": {"room_id": {"type": "string"}, "name": _NULLABLE_STR},
            },
            "terms": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Verification": {
        "type": "object",
        "required": ["ok", "checked", "problems"],
        "properties": {
            "ok": {"type": "boolean"},
            "checked": {"type": "integer", "description": "chain records checked"},
            "problems": {"type": "array", "items": {"type": "string"}},
        },
    },
    "AccessEntry": {
        "type": "object",
        "required": ["seq", "ts", "user_id", "purpose", "action", "details"],
        "properties": {
            "seq": {"type": "integer"},
            "ts": {"type": "integer"},
            "user_id": {"type": "string"},
            "purpose": {"type": "string"},
            "action": {"type": "string"},
            "details": {"type": "object"},
        },
    },
    "CompletenessReport": {
        "type": "object",
        "required": ["complete", "ledger_incomplete", "totals", "rooms"],
        "properties": {
            "complete": {"type": "boolean"},
            "ledger_incomplete": {
                "type": "boolean",
                "description": "the archive holds events the ledger should know and does not "
                "(per room: unknown_to_ledger); the report is then not complete",
            },
            "ledger_incomplete_reason": {"type": ["string", "null"]},
            "ledger": {"type": ["object", "null"]},
            "totals": {"type": "object"},
            "rooms": {"type": "array", "items": {"type": "object"}},
        },
    },
}

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Rijkschat archivist API",
        "version": "1",
        "description": "Read the Rijkschat archive: rooms, transcripts, search, integrity and "
        "the access log. Authorization: Bearer <Matrix access token> of a user whose roster "
        "role is archivist. Every archive read is recorded in the access log.",
    },
    "servers": [{"url": "/"}],
    "security": [{"matrixToken": []}],
    "paths": {
        "/api/v1/rooms": {
            "get": {
                "operationId": "listRooms",
                "summary": "Archived rooms with counts, retention and legal hold",
                "parameters": [_PURPOSE],
                "responses": {
                    "200": _json({"type": "object", "required": ["rooms"],
                                  "properties": {"rooms": {"type": "array",
                                                           "items": _ref("Room")}}},
                                 "the rooms"),
                    **_errors(401, 403, 503),
                },
            }
        },
        "/api/v1/rooms/{room_id}/events": {
            "get": {
                "operationId": "roomEvents",
                "summary": "A room's events in timeline order, paginated",
                "parameters": [
                    _ROOM_ID,
                    _param("from", "query", {"type": "string", "maxLength": 128},
                           "the `next` token of the previous page"),
                    _param("limit", "query",
                           {"type": "integer", "minimum": 1, "maximum": EVENTS_MAX_LIMIT,
                            "default": 100}, "events per page"),
                    _PURPOSE,
                ],
                "responses": {"200": _json(_ref("EventPage"), "one page of events"),
                              **_errors(400, 401, 403, 404, 503)},
            }
        },
        "/api/v1/rooms/{room_id}/verify": {
            "get": {
                "operationId": "verifyRoom",
                "summary": "Recompute the room's hash chain and checkpoints",
                "parameters": [_ROOM_ID, _PURPOSE],
                "responses": {"200": _json(_ref("Verification"), "the verification"),
                              **_errors(400, 401, 403, 404, 503)},
            }
        },
        "/api/v1/rooms/{room_id}/keys": {
            "post": {
                "operationId": "importRoomKeys",
                "summary": "Import a sender's room-key export for this room",
                "description": "Element's 'Export E2E room keys' file (MEGOLM SESSION DATA, "
                "with its passphrase) or a plain JSON list of exported sessions. Only sessions "
                "of this room are used; the archiver decrypts every archived event they open "
                "and marks it as decrypted with an imported key. Access-logged. 400: the file "
                "cannot be read (wrong passphrase, truncated, altered); 422: nothing usable, "
                "nothing changed; 503: the archiver is not reachable.",
                "parameters": [_ROOM_ID, _PURPOSE],
                "requestBody": {
                    "required": True,
                    "content": {"multipart/form-data": {"schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary",
                                     "description": "the export file (at most 16 MiB)"},
                            "passphrase": {"type": "string"},
                        },
                    }}},
                },
                "responses": {"200": _json(_ref("KeyImport"), "what the import did"),
                              **_errors(400, 401, 403, 404, 413, 422, 503)},
            }
        },
        "/api/v1/events/{event_id}": {
            "get": {
                "operationId": "getEvent",
                "summary": "One archived event",
                "parameters": [_EVENT_ID, _PURPOSE],
                "responses": {"200": _json(_ref("Event"), "the event"),
                              **_errors(400, 401, 403, 404, 503)},
            }
        },
        "/api/v1/events/{event_id}/attachment": {
            "get": {
                "operationId": "getAttachment",
                "summary": "The event's attachment, decrypted, under its original file name",
                "parameters": [_EVENT_ID, _PURPOSE],
                "responses": {
                    "200": {
                        "description": "the bytes; Content-Disposition names the file",
                        "content": {"application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}}},
                    },
                    **_errors(400, 401, 403, 404, 410, 503),
                },
            }
        },
        "/api/v1/search": {
            "get": {
                "operationId": "search",
                "summary": "Messages containing every word of q (exact words, newest first)",
                "parameters": [
                    _param("q", "query",
                           {"type": "string", "minLength": 1,
                            "maxLength": SEARCH_MAX_QUERY_CHARS}, "the words", True),
                    _param("room", "query", {"type": "string"}, "only this room"),
                    _param("sender", "query", {"type": "string"}, "only this sender"),
                    _param("from_ts", "query", {"type": "integer", "minimum": 0,
                                                "maximum": MAX_TS}, "from (ms since epoch)"),
                    _param("to_ts", "query", {"type": "integer", "minimum": 0,
                                              "maximum": MAX_TS}, "until (ms since epoch)"),
                    _param("limit", "query", {"type": "integer", "minimum": 1,
                                              "maximum": SEARCH_MAX_LIMIT, "default": 50},
                           "hits at most"),
                    _PURPOSE,
                ],
                "responses": {
                    "200": _json({"type": "object", "required": ["hits"],
                                  "properties": {"hits": {"type": "array",
                                                          "items": _ref("SearchHit")}}},
                                 "the hits"),
                    **_errors(400, 401, 403, 503),
                },
            }
        },
        "/api/v1/audit": {
            "get": {
                "operationId": "accessLog",
                "summary": "The access log (newest first); reading it is logged too",
                "parameters": [
                    _param("limit", "query", {"type": "integer", "minimum": 1,
                                              "maximum": AUDIT_MAX_LIMIT, "default": 100},
                           "entries at most"),
                    _param("user", "query", {"type": "string"}, "only this user's reads"),
                    _param("since_ts", "query", {"type": "integer", "minimum": 0,
                                                 "maximum": MAX_TS}, "from (ms since epoch)"),
                    _PURPOSE,
                ],
                "responses": {
                    "200": _json({"type": "object", "required": ["entries"],
                                  "properties": {"entries": {"type": "array",
                                                             "items": _ref("AccessEntry")}}},
                                 "the entries"),
                    **_errors(400, 401, 403, 503),
                },
            }
        },
        "/api/v1/audit/completeness": {
            "get": {
                "operationId": "completeness",
                "summary": "Completeness of the archive against the homeserver's ledger",
                "parameters": [
                    _param("grace_seconds", "query",
                           {"type": "number", "minimum": 0, "maximum": 86400},
                           "events younger than this are pending, not missing"),
                    _PURPOSE,
                ],
                "responses": {"200": _json(_ref("CompletenessReport"), "the report"),
                              **_errors(400, 401, 403, 503)},
            }
        },
        "/api/v1/woo/grounds": {
            "get": {
                "operationId": "wooGrounds",
                "summary": "The Woo's grounds for withholding (code, article, description)",
                "responses": {
                    "200": _json({"type": "object", "required": ["grounds"],
                                  "properties": {"grounds": {"type": "array",
                                                             "items": _ref("WooGround")}}},
                                 "the grounds"),
                    **_errors(401, 403),
                },
            }
        },
        "/api/v1/woo/requests": {
            "get": {
                "operationId": "wooRequests",
                "summary": "Every Woo request (oldest first); access-logged",
                "parameters": [_PURPOSE],
                "responses": {
                    "200": _json({"type": "object", "required": ["requests"],
                                  "properties": {"requests": {"type": "array",
                                                              "items": _ref("WooRequest")}}},
                                 "the requests"),
                    **_errors(401, 403, 503),
                },
            },
            "post": {
                "operationId": "wooCreateRequest",
                "summary": "Register a Woo request (stored sealed and chained in the archive)",
                "parameters": [_PURPOSE],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object",
                    "required": ["reference", "title", "rooms"],
                    "additionalProperties": False,
                    "properties": {
                        "reference": {"type": "string", "maxLength": 64,
                                      "description": "unique, e.g. 2026-0412"},
                        "title": {"type": "string", "maxLength": 500},
                        "rooms": {"type": "array", "minItems": 1, "maxItems": 200,
                                  "items": {"type": "string"}},
                        "received": {"type": "string", "format": "date",
                                     "description": "default: today"},
                        "from_ts": {"type": "integer", "minimum": 0, "maximum": MAX_TS},
                        "to_ts": {"type": "integer", "minimum": 0, "maximum": MAX_TS},
                        "query": {"type": "string", "maxLength": 500,
                                  "description": "only messages with all these words"},
                    },
                }}}},
                "responses": {
                    "201": _json(_ref("WooRequest"), "the request as stored"),
                    **_errors(400, 401, 403, 404, 409, 413, 422, 503),
                },
            },
        },
        "/api/v1/woo/requests/{request_id}": {
            "get": {
                "operationId": "wooRequest",
                "summary": "A Woo request with its documents in scope, each with its current "
                           "assessment and the history of assessments",
                "parameters": [_REQUEST_ID, _PURPOSE],
                "responses": {
                    "200": _json({"allOf": [_ref("WooRequest"), {
                        "type": "object",
                        "required": ["documents", "assessed", "outside_scope"],
                        "properties": {
                            "documents": {"type": "array", "items": _ref("WooDocument")},
                            "assessed": {"type": "integer"},
                            "outside_scope": {"type": "array",
                                              "items": _ref("WooAssessment")},
                        },
                    }]}, "the request and its documents"),
                    **_errors(401, 403, 404, 503),
                },
            }
        },
        "/api/v1/woo/requests/{request_id}/assessments/{event_id}": {
            "put": {
                "operationId": "wooAssess",
                "summary": "Assess a document of the request; a later assessment supersedes "
                           "an earlier one, both stay in the history. The message is never "
                           "changed.",
                "parameters": [_REQUEST_ID, _EVENT_ID, _PURPOSE],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object",
                    "required": ["decision"],
                    "additionalProperties": False,
                    "properties": {
                        "decision": _DECISION,
                        "grounds": {"type": "array", "items": {"type": "string"},
                                    "description": "needed unless the decision is openbaar"},
                        "spans": {"type": "array", "items": _ref("WooSpan"),
                                  "description": "needed for deels_openbaar; within the "
                                                 "text, not overlapping"},
                        "note": {"type": "string", "maxLength": 4000},
                    },
                }}}},
                "responses": {
                    "200": _json({"allOf": [_ref("WooAssessment"), {
                        "type": "object", "required": ["history"],
                        "properties": {"history": {"type": "array",
                                                   "items": _ref("WooAssessment")}},
                    }]}, "the stored assessment and the document's history"),
                    **_errors(400, 401, 403, 404, 413, 422, 503),
                },
            }
        },
        "/api/v1/woo/requests/{request_id}/documents/{event_id}/suggestions": {
            "get": {
                "operationId": "wooSuggestions",
                "summary": "Suggested 5.1.2e spans of a document (e-mail addresses, phone "
                           "numbers, IBANs, BSNs, names of officials who are not key officials "
                           "from the roster); nothing is stored",
                "parameters": [_REQUEST_ID, _EVENT_ID, _PURPOSE],
                "responses": {
                    "200": _json({"type": "object", "required": ["event_id", "suggestions"],
                                  "properties": {
                                      "event_id": {"type": "string"},
                                      "suggestions": {"type": "array",
                                                      "items": _ref("WooSuggestion")}}},
                                 "the suggestions"),
                    **_errors(401, 403, 404, 422, 503),
                },
            }
        },
        "/api/v1/woo/requests/{request_id}/export": {
            "post": {
                "operationId": "wooExport",
                "summary": "The publication package of the request as a ZIP (the signed PDF "
                           "with withheld parts as black boxes, the inventory list as xlsx "
                           "and csv, manifest.json and its Ed25519 signature manifest.sig); "
                           "every document must be assessed. Recorded in the access log "
                           "with the request's reference.",
                "parameters": [_REQUEST_ID, _PURPOSE],
                "responses": {
                    "200": {
                        "description": "the package, streamed; the header "
                                       "X-Rijkschat-Documents gives the number of documents",
                        "content": {"application/zip": {"schema": {
                            "type": "string", "format": "binary"}}},
                    },
                    **_errors(401, 403, 404, 409, 503),
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1"),
                              **_errors(401, 403)},
            }
        },
    },
    "components": {
        "securitySchemes": {
            "matrixToken": {"type": "http", "scheme": "bearer",
                            "description": "a Matrix access token of an archivist"},
        },
        "schemas": _SCHEMAS,
        "responses": {
            f"E{code}": _json(_ref("Error"), text)
            for code, text in {
                400: "bad input (malformed id, token, limit or query)",
                401: "no or unknown access token",
                403: "the caller's roster role is not archivist",
                404: "not in the archive (or no such Woo request)",
                409: "a Woo request with this reference exists already, or (export) "
                     "documents of the request are not assessed yet; nothing was changed",
                410: "destroyed after its retention period",
                413: "the upload is too large",
                422: "the input was refused (nothing usable in an upload; a Woo request or "
                     "assessment that breaks a rule); nothing was changed",
                503: "the archive, the archiver or the homeserver is unavailable",
            }.items()
        },
    },
}


def openapi_document() -> dict[str, Any]:
    return copy.deepcopy(_DOCUMENT)
