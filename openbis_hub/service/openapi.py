"""The OpenAPI document of the launch service's HTTP API."""

from __future__ import annotations

from .._version import __version__

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int) -> dict:
    text = {
        400: "Missing or bad parameters, unsafe path, or a body that is not a notebook",
        401: "No, invalid or expired openBIS token",
        403: "This openBIS user may not use this hub",
        404: "No such notebook",
        405: "Wrong method",
        413: "Body too large",
        502: "openBIS, the hub or the user's server failed (the reason is in the message)",
        504: "The user's server did not start in time",
    }
    return {str(c): {"description": text[c], "content": {"application/json": {"schema": _ERROR}}} for c in codes}


def openapi_document(prefix: str = "/services/openbis/") -> dict:
    token_query = {
        "name": "token",
        "in": "query",
        "required": True,
        "schema": {"type": "string"},
        "description": "openBIS session token or personal access token",
    }
    created = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Created"}}}}
    notebook_path = {
        "name": "path",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "Path of the notebook in the user's notebook directory, ending in .ipynb",
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "openbis-hub launch service",
            "version": __version__,
            "description": "Opens notebooks in a user's JupyterHub server for the openBIS ELN and other applications.",
        },
        "servers": [{"url": prefix}],
        "components": {
            "securitySchemes": {
                "openBIS": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "openBIS session token or personal access token",
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["message"],
                    "properties": {
                        "status": {"type": "integer"},
                        "message": {"type": "string"},
                        "error": {"type": "string"},
                    },
                },
                "Created": {
                    "type": "object",
                    "required": ["fileName", "path", "link"],
                    "properties": {
                        "fileName": {"type": "string"},
                        "path": {"type": "string"},
                        "link": {"type": "string", "format": "uri"},
                    },
                },
                "Owner": {
                    "oneOf": [
                        {
                            "type": "object",
                            "required": ["experiment"],
                            "properties": {"experiment": {"type": "string"}},
                        },
                        {"type": "object", "required": ["object"], "properties": {"object": {"type": "string"}}},
                    ]
                },
            },
        },
        "paths": {
            "/": {
                "post": {
                    "summary": "Write a notebook (the openBIS ELN's request); starts the user's server",
                    "parameters": [
                        token_query,
                        {"name": "folder", "in": "query", "schema": {"type": "string"}},
                        {"name": "filename", "in": "query", "required": True, "schema": {"type": "string"}},
                        {
                            "name": "test",
                            "in": "query",
                            "schema": {"type": "string", "enum": ["True", "False"]},
                            "description": "True: dry run, answers the file name that the write will use",
                        },
                    ],
                    "requestBody": {
                        "content": {
                            "application/x-www-form-urlencoded": {
                                "schema": {"type": "string", "description": "TEST (dry run) or the notebook JSON"}
                            }
                        }
                    },
                    "responses": {
                        "200": {"description": "Written (or would be)", **created},
                        **_errors(400, 401, 403, 413, 502, 504),
                    },
                },
                "get": {"summary": "Explains how to use the endpoint", "responses": _errors(405)},
            },
            "/api/notebooks": {
                "post": {
                    "summary": "Create a notebook from the ELN's template and open the user's server",
                    "security": [{"openBIS": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "description": "`owner` is required unless `from_dataset` names a dataset "
                                    "whose notebook to open (as the ELN's Use Jupyter Notebook as Template). "
                                    "The notebook's save cell names the properties as this openBIS does "
                                    "(`$name`, `$history_id` on 20.10; `name`, `history_id` on 6 and 7).",
                                    "properties": {
                                        "datasets": {"type": "array", "items": {"type": "string"}},
                                        "owner": {"$ref": "#/components/schemas/Owner"},
                                        "folder": {"type": "string"},
                                        "name": {"type": "string"},
                                        "from_dataset": {
                                            "type": "string",
                                            "description": "permId of a dataset holding a notebook",
                                        },
                                        "file": {
                                            "type": "string",
                                            "description": "with from_dataset: which .ipynb, if several",
                                        },
                                        "keep_history": {
                                            "type": "boolean",
                                            "description": "with from_dataset: keep its history id",
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": {"description": "Created", **created},
                        **_errors(400, 401, 403, 413, 502, 504),
                    },
                },
            },
            "/api/notebooks/{path}": {
                "get": {
                    "summary": "Read a notebook and open a kernel session for it",
                    "security": [{"openBIS": []}],
                    "parameters": [notebook_path],
                    "responses": {
                        "200": {
                            "description": "Contents model and session",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["data", "session"],
                                        "properties": {"data": {"type": "object"}, "session": {"type": "object"}},
                                    }
                                }
                            },
                        },
                        **_errors(400, 401, 404, 502, 504),
                    },
                },
                "put": {
                    "summary": "Save a notebook (and its .py export)",
                    "security": [{"openBIS": []}],
                    "parameters": [notebook_path],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["content"],
                                    "properties": {
                                        "content": {"type": "object"},
                                        "format": {"const": "json"},
                                        "type": {"type": "string"},
                                        "export": {"type": "boolean"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Contents model without content",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **_errors(400, 401, 413, 502, 504),
                    },
                },
            },
            "/api/sessions": {
                "get": {
                    "summary": "The user's kernel sessions",
                    "security": [{"openBIS": []}],
                    "responses": {
                        "200": {
                            "description": "Sessions",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["data"],
                                        "properties": {"data": {"type": "array", "items": {"type": "object"}}},
                                    }
                                }
                            },
                        },
                        **_errors(401, 502, 504),
                    },
                },
            },
            "/api/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}
            },
            "/api/health": {"get": {"summary": "Liveness", "responses": {"200": {"description": "ok"}}}},
        },
    }
