"""Publishes COUNT JSON readings to TOPIC on the broker at 127.0.0.1:PORT,
QoS 1, as a plant gateway written in Python would (paho-mqtt), and waits
until the broker has acknowledged every one."""

import json
import sys

import paho.mqtt.client as mqtt


def main() -> None:
    port, topic, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ingot-test-gateway")
    client.connect("127.0.0.1", port)
    client.loop_start()
    sent = []
    for i in range(count):
        row = {"time": i, "tags": {"device": f"py{i % 5}"}, "v": float(i), "ok": i % 2 == 0}
        sent.append(client.publish(topic, json.dumps(row), qos=1))
    for message in sent:
        message.wait_for_publish(timeout=30)
        if not message.is_published():
            sys.exit(f"message {message.mid} was not acknowledged by the broker")
    client.loop_stop()
    client.disconnect()


if __name__ == "__main__":
    main()
