"""EventBus: edgecore's MQTT client to the broker (mosquitto), used by the device twin.

The client itself is ``kubeshore.mqtt``, shared with the mapper SDK's MQTT sink.
"""

from kubeshore.mqtt import BrokerAddress, MessageHandler, MqttClient

__all__ = ["BrokerAddress", "MessageHandler", "MqttClient"]
