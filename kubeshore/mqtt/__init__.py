"""The one MQTT 3.1.1 client of kubeshore: asyncio, no threads, with limits on what a broker may send.

It lives in ``kubeshore`` because two kinds of process use it and neither may import the other:
edgecore's eventbus (device twins over ``$hw/events/...``) and the mapper SDK's MQTT push sink.
It imports only the standard library, as everything in ``kubeshore`` shared by edge processes must.

Public surface: ``MqttClient``, ``BrokerAddress``, ``MessageHandler``.
"""

from kubeshore.mqtt._client import BrokerAddress, MessageHandler, MqttClient

__all__ = ["BrokerAddress", "MessageHandler", "MqttClient"]
