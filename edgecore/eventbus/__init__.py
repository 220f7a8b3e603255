"""EventBus: edgecore's MQTT client to the broker (mosquitto), used by the device twin."""

from edgecore.eventbus._client import BrokerAddress, MessageHandler, MqttClient

__all__ = ["BrokerAddress", "MessageHandler", "MqttClient"]
