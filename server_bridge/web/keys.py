"""Typed keys for the objects an app shares with its handlers."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from server_bridge.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
HTTP = web.AppKey("http", aiohttp.ClientSession)
