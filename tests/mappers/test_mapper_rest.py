"""The mapper REST API on a real port with a virtual device registered over DMI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import crds
from mappers.sdk.app import MapperApp
from mappers.sdk.config import MapperConfig
from mappers.virtual import VirtualDriver

Until = Callable[..., Coroutine[Any, Any, None]]

MODEL = {
    "apiVersion": "devices.kubeedge.io/v1beta1",
    "kind": "DeviceModel",
    "metadata": {"name": "lamp-model", "namespace": "default"},
    "spec": {
        "protocol": "virtual",
        "properties": [
            {"name": "power", "type": "BOOLEAN"},
            {"name": "level", "type": "INT", "minimum": "0", "maximum": "100", "unit": "%"},
            {"name": "watts", "type": "DOUBLE", "accessMode": "ReadOnly"},
        ],
    },
}
DEVICE = {
    "apiVersion": "devices.kubeedge.io/v1beta1",
    "kind": "Device",
    "metadata": {"name": "lamp", "namespace": "home"},
    "spec": {
        "deviceModelRef": {"name": "lamp-model"},
        "protocol": {"protocolName": "virtual", "configData": {"seed": "x"}},
        "properties": [
            {"name": "power", "collectCycle": 50, "visitors": {"configData": {"value": False}}},
            {"name": "level", "collectCycle": 50, "visitors": {"configData": {"value": 10}}},
            {"name": "watts", "collectCycle": 50, "visitors": {"configData": {"kind": "sine", "offset": 40}}},
        ],
        "methods": [{"name": "dim", "description": "set brightness", "propertyNames": ["level"]}],
    },
}


async def _start(sock_dir: Path, dmi_peer: Any, until: Until, rest: dict[str, Any]) -> MapperApp:
    """A mapper with the lamp device registered and connected; ``rest`` is its REST section."""
    config = MapperConfig.model_validate(
        {
            "grpc_server": {"socket_path": str(sock_dir / "virtual.sock")},
            "common": {"edgecore_sock": str(sock_dir / "dmi.sock")},
            "rest": rest,
            "sinks": {"sqlite": {"path": str(sock_dir / "series.db")}},
        }
    )
    app = MapperApp(VirtualDriver, config)
    await app.start()
    await until(lambda: app.client.registered.is_set())
    model = crds.DeviceModel.model_validate(MODEL)
    model.metadata.namespace = "home"
    await dmi_peer.create_model(model)
    await dmi_peer.register_device(crds.Device.model_validate(DEVICE))
    await until(lambda: app.mapper.get("home", "lamp").connected)
    return app


@pytest.fixture
async def rest(sock_dir: Path, dmi_peer: Any, until: Until) -> AsyncIterator[tuple[str, MapperApp]]:
    app = await _start(sock_dir, dmi_peer, until, {"host": "127.0.0.1", "port": 0})
    yield f"http://127.0.0.1:{app.rest_port}", app
    await app.stop()


async def test_kubeedge_routes_and_writes(rest: tuple[str, MapperApp], until: Until) -> None:
    base, app = rest
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/v1/ping") as r:
            body = await r.json()
            assert r.status == 200 and body["Message"].startswith("This is v1 API")
            assert body["apiVersion"] == "v1" and body["statusCode"] == 200
        async with http.get(f"{base}/api/v1/device/home/lamp/level", headers={"X-Correlation-ID": "c1"}) as r:
            data = (await r.json())["Data"]
            assert data == data | {"DeviceName": "lamp", "Namespace": "home", "PropertyName": "level"}
            assert data["Value"] == "10" and data["Type"] == "INT" and r.headers["X-Correlation-ID"] == "c1"

        # real writes: JSON and text bodies
        async with http.put(f"{base}/api/v1/device/home/lamp/level", json={"value": 55}) as r:
            assert r.status == 200, await r.text()
        async with http.post(f"{base}/api/v1/device/home/lamp/power", data="true") as r:
            assert r.status == 200
        async with http.get(f"{base}/api/v1/device/home/lamp/power") as r:
            assert (await r.json())["Data"]["Value"] == "true"

        # refused writes say why
        async with http.put(f"{base}/api/v1/device/home/lamp/level", json={"value": 101}) as r:
            assert r.status == 409 and "above the maximum 100" in (await r.json())["Message"]
        async with http.put(f"{base}/api/v1/device/home/lamp/watts", json={"value": 1}) as r:
            assert r.status == 409 and "ReadOnly" in (await r.json())["Message"]
        async with http.put(f"{base}/api/v1/device/home/lamp/level", json={"value": "bright"}) as r:
            assert r.status == 409 and "not an integer" in (await r.json())["Message"]
        async with http.put(f"{base}/api/v1/device/home/lamp/level", json=[1]) as r:
            assert r.status == 400
        async with http.get(f"{base}/api/v1/device/home/nope/level") as r:
            assert r.status == 404 and "home/nope" in (await r.json())["Message"]

        # device methods (a PUT; KubeEdge's GET form is refused, see test_get_never_writes)
        async with http.get(f"{base}/api/v1/devicemethod/home/lamp") as r:
            methods = (await r.json())["Data"]["Methods"]
            assert methods[0]["Name"] == "dim"
            assert methods[0]["Parameters"] == [{"PropertyName": "level", "ValueType": "INT"}]
        async with http.put(f"{base}/api/v1/devicemethod/home/lamp/dim/level/20") as r:
            assert r.status == 200 and "Write data 20 to device home/lamp" in (await r.json())["Message"]
        async with http.put(f"{base}/api/v1/devicemethod/home/lamp/dim/power/true") as r:
            assert r.status == 400
        assert app.mapper.get("home", "lamp").twins["level"].reading.value == "20"  # type: ignore[union-attr]

        async with http.get(f"{base}/api/v1/meta/model/home/lamp") as r:
            body = await r.json()
            assert body["name"] == "lamp-model"
            level = next(p for p in body["properties"] if p["name"] == "level")
            assert level == level | {"dataType": "INT", "maximum": "100", "unit": "%"}

        async with http.get(f"{base}/api/v1/device/home/lamp") as r:
            data = (await r.json())["Data"]
            assert data["State"] == "online" and data["LastOnlineTime"]

        await until(lambda: app.sinks.local is not None and app.sinks.local.sent > 12)
        async with http.get(f"{base}/api/v1/database/home/lamp?property=watts&limit=3") as r:
            rows = (await r.json())["Data"]
            assert len(rows) == 3 and {row["propertyName"] for row in rows} == {"watts"}

        async with http.get(f"{base}/api/v1/openapi.json") as r:
            doc = await r.json()
            assert doc["openapi"].startswith("3.")
            assert "put" in doc["paths"]["/api/v1/device/{namespace}/{name}/{property}"]
        async with http.get(f"{base}/healthz") as r:
            health = await r.json()
            assert r.status == 200
            assert health["status"] == "ok" and health["registered"] and health["devices"] == 1
        async with http.get(f"{base}/readyz") as r:
            assert r.status == 200 and await r.text() == "ok"
        async with http.get(f"{base}/metrics") as r:
            text = await r.text()
            assert 'mapper_readings_total{protocol="virtual"}' in text
            assert 'mapper_devices{state="online"} 1.0' in text


async def test_get_never_writes(rest: tuple[str, MapperApp]) -> None:
    base, app = rest
    before = app.mapper.get("home", "lamp").twins["level"].reading.value  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/v1/devicemethod/home/lamp/dim/level/77") as r:
            assert r.status == 405 and r.headers["Allow"] == "PUT, POST"
            assert "a GET never changes a device" in (await r.json())["Message"]
        async with http.head(f"{base}/api/v1/devicemethod/home/lamp/dim/level/77") as r:
            assert r.status == 405
    assert app.mapper.get("home", "lamp").twins["level"].reading.value == before  # type: ignore[union-attr]
    assert app.config.rest.host == "127.0.0.1"  # the default, not 0.0.0.0


async def test_bearer_token(sock_dir: Path, dmi_peer: Any, until: Until) -> None:
    (sock_dir / "rest.token").write_text("s3cret\n")
    app = await _start(sock_dir, dmi_peer, until, {"port": 0, "token_file": str(sock_dir / "rest.token")})
    try:
        base = f"http://127.0.0.1:{app.rest_port}"
        write = f"{base}/api/v1/device/home/lamp/level"
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"Authorization": "Bearer guess"}, {"Authorization": "s3cret"}):
                async with http.put(write, json={"value": 66}, headers=headers) as r:
                    assert r.status == 401 and "Bearer" in (await r.json())["Message"]
                async with http.get(f"{base}/api/v1/device/home/lamp", headers=headers) as r:
                    assert r.status == 401
            assert app.mapper.get("home", "lamp").twins["level"].reading.value != "66"  # type: ignore[union-attr]
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200
            async with http.put(write, json={"value": 66}, headers={"Authorization": "Bearer s3cret"}) as r:
                assert r.status == 200, await r.text()
    finally:
        await app.stop()


async def test_readiness_says_whether_edgecore_has_the_mapper(
    sock_dir: Path, dmi_peer_class: Any, until: Until
) -> None:
    """A mapper pointed at a socket where no edgecore listens is alive but not ready; it turns ready
    when edgecore comes, and not ready again when edgecore goes. KubeEdge's ping stays 200."""
    edgecore_sock = sock_dir / "wrong" / "dmi.sock"
    config = MapperConfig.model_validate(
        {
            "grpc_server": {"socket_path": str(sock_dir / "virtual.sock")},
            "common": {"edgecore_sock": str(edgecore_sock)},
            "rest": {"port": 0},
            "runtime": {"register_retry_max_ms": 300},
        }
    )
    app = MapperApp(VirtualDriver, config)
    await app.start()
    base = f"http://127.0.0.1:{app.rest_port}"
    peer = None
    try:
        async with aiohttp.ClientSession() as http:

            async def status(path: str) -> int:
                async with http.get(base + path) as r:
                    return r.status

            await until(
                lambda: (
                    app.client.registrations == 0 and app.client.not_ready() != "registering with edgecore"
                )
            )
            async with http.get(f"{base}/readyz") as r:
                assert r.status == 503
                assert f"cannot register with edgecore at {edgecore_sock}" in await r.text()
            async with http.get(f"{base}/healthz") as r:
                health = await r.json()
                assert r.status == 503 and health["status"] == "not ready" and not health["registered"]
                assert str(edgecore_sock) in health["reason"]
            assert await status("/livez") == 200
            async with http.get(f"{base}/api/v1/ping") as r:  # KubeEdge's answer, whatever edgecore does
                assert r.status == 200 and (await r.json())["Message"].startswith("This is v1 API")

            edgecore_sock.parent.mkdir()
            peer = dmi_peer_class(str(edgecore_sock))
            await peer.start()

            async def ready() -> bool:
                return await status("/readyz") == 200

            await until(ready, within=15)
            assert await status("/healthz") == 200

            await peer.stop()  # edgecore stops: its socket goes

            async def not_ready() -> bool:
                return await status("/readyz") == 503

            await until(not_ready, within=15)
    finally:
        await app.stop()
        if peer is not None:
            await peer.close()
