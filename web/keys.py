"""Typed keys of every app-wide object. Only create_app sets them."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from media.ice import IceSettings
from media.plane import MediaPlane
from recorder.filing import CaptureFiler
from recorder.object_store import ObjectStore
from rooms.calls import CallService
from rooms.changes import ChangeFeed
from rooms.clock import Clock
from rooms.delivery.worker import DeliveryWorker
from rooms.invites import InviteService
from rooms.staff_auth import JwtVerifier
from signalling.hub import Hub
from signalling.limits import FailureLimiter
from web.metrics import Metrics
from web.settings import Settings

settings_key = web.AppKey("settings", Settings)
clock_key: web.AppKey[Clock] = web.AppKey("clock")
engine_key = web.AppKey("engine", AsyncEngine)
object_store_key = web.AppKey("object_store", ObjectStore)
filer_key = web.AppKey("filer", CaptureFiler)
invites_key = web.AppKey("invites", InviteService)
delivery_key = web.AppKey("delivery", DeliveryWorker)
verifier_key = web.AppKey("verifier", JwtVerifier)
metrics_key = web.AppKey("metrics", Metrics)
feed_key = web.AppKey("feed", ChangeFeed)
calls_key = web.AppKey("calls", CallService)
hub_key = web.AppKey("hub", Hub)
ice_key = web.AppKey("ice", IceSettings)
media_plane_key = web.AppKey("media_plane", MediaPlane)
link_guard_key = web.AppKey("link_guard", FailureLimiter)
