"""The app factory: every app-wide object is created here and lives on a typed AppKey."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.metadata import version
from pathlib import Path

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from media.ice import install_host_addresses, installed_host_addresses
from media.plane import MediaPlane
from recorder.filing import CaptureFiler
from recorder.media_service import MediaService
from recorder.object_store import LocalObjectStore, ObjectStore, S3ObjectStore
from recorder.spool import recover_recordings
from recorder.upload_spool import UploadSpool
from recorder.uploader import PendingUploader, UploadRetry
from rooms import link_tokens
from rooms.calls import CallService
from rooms.changes import MEDIA_ADDED, Change, ChangeFeed
from rooms.clock import Clock, utc_now
from rooms.database import open_engine
from rooms.delivery.channels import (
    Channel,
    Channels,
    OutboxChannel,
    SmsGatewayChannel,
    SmsGatewayConfig,
    SmtpChannel,
    SmtpConfig,
)
from rooms.delivery.worker import DeliveryWorker, RetryPolicy
from rooms.errors import NotFound
from rooms.invites import InviteService
from rooms.migrations import migrate
from rooms.models import Method
from rooms.staff_auth import JwtVerifier
from rooms.stopping import StopSignal, finish
from signalling.call_namespace import CallLimits
from signalling.hub import Hub, HubConfig
from signalling.limits import FailureLimiter
from signalling.media_port import MediaPort
from signalling.media_router import RoutedMedia
from web import demo, pages
from web.api import dev_api, directory_api, health_api, ice_api, invites_api, media_api, openapi
from web.api.endpoint import Endpoint
from web.api.views import API as API_PREFIX
from web.errors import Handler, error_middleware
from web.keys import (
    calls_key,
    clock_key,
    delivery_key,
    engine_key,
    feed_key,
    filer_key,
    hub_key,
    ice_key,
    invites_key,
    link_guard_key,
    media_plane_key,
    metrics_key,
    object_store_key,
    settings_key,
    verifier_key,
)
from web.metrics import Metrics
from web.schemas import ID_PATTERN
from web.security import link_guard_middleware, security_headers_middleware
from web.settings import Settings

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16_384


def endpoints(settings: Settings) -> list[Endpoint]:
    eps = [
        *directory_api.ENDPOINTS, *invites_api.ENDPOINTS, *media_api.ENDPOINTS, *ice_api.ENDPOINTS,
        *dev_api.ENDPOINTS,
    ]
    return [ep for ep in eps if settings.demo or not ep.demo_only]


@web.middleware
async def path_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An id outside the id alphabet names nothing: answer 404 before it reaches a query.

    PostgreSQL refuses NUL and over-long values with errors, so checking here keeps every store
    call to well-formed ids in one place instead of in each handler.
    """
    for name, value in request.match_info.items():
        if name.endswith("_id") and not ID_PATTERN.fullmatch(value):
            raise NotFound(f"{name.removesuffix('_id')} not found")
    return await handler(request)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        m = request.app[metrics_key]
        m.requests.labels(request.method, route, str(status)).inc()
        m.latency.labels(route).observe(time.perf_counter() - started)


async def _host_addresses(app: web.Application) -> AsyncIterator[None]:
    """aioice's host-address gathering is process-wide: set it from the settings while the app runs.

    Stopping puts back what was there before, so apps started one after another in one process
    (the tests) each see their own setting.
    """
    previous = installed_host_addresses()
    install_host_addresses(app[ice_key].host_addresses)
    yield
    install_host_addresses(previous)


def _object_store(s: Settings) -> ObjectStore:
    if s.object_store == "s3":
        return S3ObjectStore(
            s.s3_endpoint, s.s3_bucket, s.s3_access_key, s.s3_secret_key, region=s.s3_region, secure=s.s3_secure
        )
    return LocalObjectStore(Path(s.storage_dir))


async def _storage(app: web.Application) -> AsyncIterator[None]:
    """An S3 bucket is created when missing; an unreachable or refusing S3 server stops start-up."""
    store = app[object_store_key]
    if isinstance(store, S3ObjectStore):
        try:
            await store.ensure_bucket()
        except Exception:
            store.close()
            log.error("object store: bucket %r is not usable", store.bucket)
            raise
    yield
    if isinstance(store, S3ObjectStore):
        store.close()


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = app[engine_key]
    await migrate(engine)
    if app[settings_key].demo:
        await demo.seed(engine)
    yield
    await engine.dispose()


def _channels(s: Settings, engine: AsyncEngine) -> tuple[Channels, list[SmsGatewayChannel]]:
    outbox = OutboxChannel(engine)
    email: Channel = outbox
    sms: Channel = outbox
    owned: list[SmsGatewayChannel] = []
    if s.email_delivery == "smtp":
        email = SmtpChannel(
            SmtpConfig(s.smtp_host, s.smtp_port, s.smtp_sender, s.smtp_username, s.smtp_password,
                       s.smtp_starttls, s.smtp_tls)
        )
    if s.sms_delivery == "gateway":
        gateway = SmsGatewayChannel(SmsGatewayConfig(s.sms_gateway_url, s.sms_gateway_token, s.sms_sender))
        owned.append(gateway)
        sms = gateway
    return Channels({Method.EMAIL: email, Method.SMS: sms}), owned


async def _sweep_expired(service: InviteService, every_s: float, stop: StopSignal) -> None:
    while not stop.stopped:
        try:
            closed = await service.expire_due()
            if closed:
                log.info("closed %d expired invites", len(closed))
        except Exception:
            log.exception("expiry sweep failed")
        await stop.sleep(every_s)


def _background(
    gateways: list[SmsGatewayChannel], uploader: PendingUploader
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        # Recordings a crash left unfinished are filed before any call comes in (recorder/spool.py).
        await recover_recordings(Path(app[settings_key].recordings_dir), app[filer_key])
        sweeper_stop = StopSignal()
        tasks = [
            asyncio.create_task(app[delivery_key].run(), name="delivery-worker"),
            # Captures an earlier run or this one kept while the object store was down (recorder/uploader.py).
            asyncio.create_task(uploader.run(), name="pending-uploader"),
            asyncio.create_task(
                _sweep_expired(app[invites_key], app[settings_key].expiry_sweep_s, sweeper_stop),
                name="expiry-sweeper",
            ),
        ]
        await app[hub_key].start()
        yield
        # The hub first: disconnecting its clients still writes their leaving to the database.
        await app[hub_key].stop()
        await app[media_plane_key].close()
        app[delivery_key].stop()
        uploader.stop()
        sweeper_stop.set()
        await finish(tasks)
        for gateway in gateways:
            await gateway.close()

    return ctx


def _media_router(router: RoutedMedia) -> Callable[[web.Application], AsyncIterator[None]]:
    """Up before the hub takes sockets; down after the hub and the media plane have stopped."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        await router.start()
        yield
        await router.close()

    return ctx


def _manifest_keeper(filer: CaptureFiler) -> Callable[[Change], Awaitable[None]]:
    """Keeps each invite's manifest.json current: rewritten after every change of the invite."""

    async def keep(change: Change) -> None:
        if change.kind != MEDIA_ADDED:  # the filer rewrites it itself when it files a capture
            await filer.refresh_manifest(change.invite_id)

    return keep


def create_app(
    settings: Settings, *, clock: Clock = utc_now, media: MediaPort | None = None, websocket_only: bool = False
) -> web.Application:
    """Build the application; `settings` must already be resolved (see Settings.resolved).

    Every long-lived object is made here; the SQL engine connects lazily, so nothing does I/O
    before the cleanup contexts run at start-up.
    """
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            metrics_middleware, security_headers_middleware, link_guard_middleware, error_middleware,
            path_id_middleware,
        ],
        # Above aiohttp's default 8190 bytes, so over-long bearer tokens and link paths reach the
        # handlers and get the API's JSON errors (401, 404), not the parser's plain-text 400.
        handler_args={"max_line_size": MAX_HEADER_BYTES, "max_field_size": MAX_HEADER_BYTES},
    )
    engine = open_engine(settings.database_url)
    metrics = Metrics()
    verifier = JwtVerifier.for_settings(
        settings.jwt_secret, settings.jwt_public_key, settings.jwt_audience, settings.jwt_issuer
    )
    feed = ChangeFeed()
    worker_ref: list[DeliveryWorker] = []
    invites = InviteService(
        engine,
        link_tokens.LinkKey(settings.link_secret),
        settings.public_url,
        clock,
        feed,
        on_queued=lambda: worker_ref[0].wake() if worker_ref else None,
    )
    channels, gateways = _channels(settings, engine)
    worker = DeliveryWorker(
        engine,
        channels,
        invites.render_message,
        clock,
        RetryPolicy(max_attempts=settings.delivery_max_attempts, first_delay_s=settings.delivery_first_retry_s),
        feed=feed,
        on_outcome=lambda outcome: metrics.deliveries.labels(outcome).inc(),
    )
    worker_ref.append(worker)
    node_id = uuid.uuid4().hex
    calls = CallService(engine, clock, node_id, feed, reconnect_grace_s=settings.reconnect_grace_s)
    hub_config = HubConfig(
        redis_url=settings.redis_url,
        limits=CallLimits(camera_switch_ttl_s=settings.camera_switch_timeout_s),
        health_interval_s=settings.redis_health_interval_s,
        ping_interval_s=settings.socket_ping_interval_s,
        ping_timeout_s=settings.socket_ping_timeout_s,
        websocket_only=websocket_only,
    )
    store = _object_store(settings)
    spool = UploadSpool(Path(settings.pending_uploads_dir))
    filer = CaptureFiler(engine, store, feed, clock, spool)
    uploader = PendingUploader(filer, spool, UploadRetry(first_delay_s=settings.upload_retry_s))
    ice = settings.ice()
    plane = MediaPlane(ice, relay=settings.media_relay)
    media = media or MediaService(plane, filer, Path(settings.recordings_dir))
    router: RoutedMedia | None = None
    if settings.redis_url:
        # Several nodes: each call's media runs on one owner node, whoever's socket asks.
        router = RoutedMedia(media, settings.redis_url, node_id, has_call=lambda i: plane.call(i) is not None)
        media = router
    link_guard = FailureLimiter()  # one budget per client for REST and /call alike
    hub = Hub(hub_config, engine, invites, calls, verifier, media, feed, link_guard)

    app[settings_key] = settings
    app[clock_key] = clock
    app[metrics_key] = metrics
    metrics.watch_runtime(lambda: plane.peer_connections, lambda: plane.calls_open)
    app[verifier_key] = verifier
    app[engine_key] = engine
    app[object_store_key] = store
    app[filer_key] = filer
    feed.subscribe(_manifest_keeper(filer))
    app[media_plane_key] = plane
    app[feed_key] = feed
    app[invites_key] = invites
    app[delivery_key] = worker
    app[calls_key] = calls
    app[hub_key] = hub
    app[link_guard_key] = link_guard
    app[ice_key] = ice
    app.cleanup_ctx.extend([_host_addresses, _storage, _database])
    if router is not None:
        app.cleanup_ctx.append(_media_router(router))
    app.cleanup_ctx.append(_background(gateways, uploader))
    hub.attach(app)

    eps = endpoints(settings)
    for ep in eps:
        app.router.add_route(ep.method, API_PREFIX + ep.path, ep.handler)
    document = openapi.build(eps, API_PREFIX, version("claimcam"))

    async def openapi_json(_: web.Request) -> web.StreamResponse:
        return web.json_response(document)

    app.router.add_get(API_PREFIX + "/openapi.json", openapi_json)
    app.router.add_get("/healthz", health_api.healthz)
    app.router.add_get("/readyz", health_api.readyz)
    app.router.add_get("/metrics", health_api.metrics)
    pages.add_routes(app, settings)
    if settings.demo:
        app.router.add_get("/dev/demo", dev_api.demo_info)
    return app
