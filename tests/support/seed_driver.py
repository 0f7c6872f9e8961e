"""Runs the predecessor's own key module (tests/fixtures/seed_api_keys.py,
copied unchanged from shared/seed) against a Postgres database.

usage: seed_driver.py DSN create-table | generate EMAIL | verify KEY | list
Prints one JSON document on stdout.
"""
import json
import os
import sys
import types

import psycopg2
import psycopg2.extras

dsn = sys.argv[1]


def get_db_connection():
    # DictCursor rows answer both row[0] and row['user_id'], which is what the
    # seed's code uses in different places.
    return psycopg2.connect(dsn, cursor_factory=psycopg2.extras.DictCursor)


database = types.ModuleType("database")
connection = types.ModuleType("database.connection")
connection.get_db_connection = get_db_connection
database.connection = connection
sys.modules["database"] = database
sys.modules["database.connection"] = connection

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
import seed_api_keys  # noqa: E402  (creates the table on import, as the seed did)

command = sys.argv[2]
if command == "create-table":
    seed_api_keys.create_api_keys_table()
    out = {"ok": True}
elif command == "generate":
    out = seed_api_keys.generate_api_key(sys.argv[3])
elif command == "verify":
    out = seed_api_keys.verify_api_key(sys.argv[3])
elif command == "list":
    out = seed_api_keys.list_api_keys()
else:
    raise SystemExit(f"unknown command {command}")
print(json.dumps(out, default=str))
