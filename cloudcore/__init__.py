"""cloudcore, the cloud hub: watches Kubernetes (a real cluster or the embedded API server) and syncs
what each edge node needs down its websocket (cloudhub, edgecontroller, devicecontroller, sync); in
standalone mode it is the whole control plane (apiserver, workloads, node-group controllers)."""
