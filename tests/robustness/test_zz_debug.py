import asyncio, json, time
from robustness._robust import RobustStack, call, device
from dmi.rpc import Channel
from dmi.v1beta1 import api_pb2

def st(stack, name, state):
    async def go():
        ch = Channel(stack.dmi_socket())
        await call(ch, "ReportDeviceStates", api_pb2.ReportDeviceStatesRequest(deviceName=name, deviceNamespace="default", state=state), api_pb2.ReportDeviceStatesResponse)
        await ch.close()
    asyncio.run(go())

def test_debug(stack: RobustStack) -> None:
    stack.apply_objects(device("hung-9", protocol="hung"))
    from robustness._robust import wait_devices
    asyncio.run(wait_devices(stack.dmi_socket(), ["hung-9"]))
    time.sleep(1)
    a = stack.samples("edgecore")["edgecore_messages_sent_total"]
    c = stack.samples("cloudcore")
    st(stack, "hung-9", "unhealthy")
    time.sleep(4)
    b = stack.samples("edgecore")["edgecore_messages_sent_total"]
    d = stack.samples("cloudcore")
    print("sent", a, b)
    print({k: (c.get(k), v) for k, v in d.items() if c.get(k) != v})
    print("h9", stack.status("hung-9").get("status", {}).get("state"))
