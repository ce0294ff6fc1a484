"""Unit tests of the messages wire format."""

import json
import unittest

import messages
from messages import MotorCommand, Plan, Telemetry, Waypoint

PLAN = Plan(
    waypoints=(Waypoint(x=0.0, y=0.0, speed=0.0), Waypoint(x=3.0, y=0.0, speed=60)),
    plan_id="dock-1",
)
COMMAND = MotorCommand(speed=0.6, turn=0.0, duration=5.0)
TELEMETRY = Telemetry(x=3.0, y=0.0, heading=0.0, speed=0.6, odometer=3.0)


class RoundTripTest(unittest.TestCase):
    def test_every_message_type_survives_encode_decode(self):
        for message in (PLAN, COMMAND, TELEMETRY):
            with self.subTest(type(message).__name__):
                self.assertEqual(messages.decode(messages.encode(message)), message)

    def test_envelope_names_protocol_and_type(self):
        envelope = json.loads(messages.encode(COMMAND))
        self.assertEqual(envelope["protocol"], messages.PROTOCOL_VERSION)
        self.assertEqual(envelope["type"], "motor_command")

    def test_waypoint_speed_is_whole_centimetres_per_second_on_the_wire(self):
        body = json.loads(messages.encode(PLAN))["body"]
        self.assertEqual(body["waypoints"][1], {"x": 3.0, "y": 0.0, "speed": 60})

    def test_battery_is_optional(self):
        with_battery = Telemetry(x=0.0, y=0.0, heading=0.0, speed=0.0, odometer=0.0, battery=0.5)
        self.assertEqual(messages.decode(messages.encode(with_battery)), with_battery)
        self.assertNotIn("battery", json.loads(messages.encode(TELEMETRY))["body"])

    def test_unknown_fields_are_ignored(self):
        envelope = json.loads(messages.encode(TELEMETRY))
        envelope["body"]["added_later"] = 1
        self.assertEqual(messages.decode(json.dumps(envelope).encode()), TELEMETRY)


class DecodeErrorTest(unittest.TestCase):
    def test_other_protocol_is_refused(self):
        data = json.dumps({"protocol": 1, "type": "plan", "body": {}}).encode()
        with self.assertRaisesRegex(messages.DecodeError, "protocol 1 is not"):
            messages.decode(data)

    def test_unknown_type_is_refused(self):
        data = json.dumps({"protocol": messages.PROTOCOL_VERSION, "type": "song", "body": {}}).encode()
        with self.assertRaisesRegex(messages.DecodeError, "unknown message type 'song'"):
            messages.decode(data)

    def test_missing_field_is_refused(self):
        data = json.dumps({"protocol": messages.PROTOCOL_VERSION, "type": "telemetry", "body": {"x": 1}}).encode()
        with self.assertRaisesRegex(messages.DecodeError, "malformed telemetry body"):
            messages.decode(data)

    def test_garbage_is_refused(self):
        with self.assertRaisesRegex(messages.DecodeError, "not a JSON message"):
            messages.decode(b"\xff\x00")

    def test_encode_refuses_non_messages(self):
        with self.assertRaisesRegex(TypeError, "not a message: dict"):
            messages.encode({"speed": 1})


if __name__ == "__main__":
    unittest.main()
