"""edgecore, the edge agent: keeps what the cloud sent in SQLite and works on while the cloud is away
(edgehub, metamanager and the MetaServer, devicetwin, dmiserver for mappers, eventbus to MQTT, edged
for Pods)."""
