"""``maild customers``: the known customers of SPEC §13 and their ticket-list links (§12).

``import FILE.csv`` reads a header row with ``email`` or ``domain`` (one of them per
row), ``name`` and ``organization``; every row is checked before any is written,
and the errors name the line. ``list [--json]`` prints each customer with the
link to their tickets (addresses only; a domain has no list of its own).
"""

from __future__ import annotations

import argparse
import csv
import io
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from maild.cli_env import EX_ERROR, EX_OK, CliEnv
from maild.cli_output import print_json, print_table
from maild.config import Settings, is_email
from maild.errors import UsageError
from maild.storage import customers
from maild.storage.models import Customer

CSV_COLUMNS = ("email", "domain", "name", "organization")
_DOMAIN_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789.-")


def add_parser(sub: Any) -> None:
    c = sub.add_parser("customers", help="known customers and their ticket-list links")
    c_sub = c.add_subparsers(dest="customers_command", metavar="SUBCOMMAND", required=True)
    cl = c_sub.add_parser("list", help="known customers")
    cl.add_argument("--json", action="store_true")
    ca = c_sub.add_parser("add", help="add (or update) a customer address or domain")
    ca.add_argument("address", metavar="EMAIL|@DOMAIN")
    ca.add_argument("--name", default="")
    ca.add_argument("--organization", default="")
    cr = c_sub.add_parser("remove", help="remove a customer address or domain")
    cr.add_argument("address", metavar="EMAIL|@DOMAIN")
    ci = c_sub.add_parser("import", help="add customers from a CSV file")
    ci.add_argument("file", metavar="FILE.csv")
    ck = c_sub.add_parser("rotate-link", help="a new ticket-list link for an address")
    ck.add_argument("address", metavar="EMAIL")


def _valid_domain(value: str) -> bool:
    return "." in value and set(value) <= _DOMAIN_CHARS and not value.startswith((".", "-"))


def parse_target(value: str) -> tuple[str | None, str | None]:
    """``a@b.com`` -> (email, None); ``@b.com`` or ``b.com`` -> (None, domain)."""
    value = value.strip().lower()
    if "@" in value and not value.startswith("@"):
        if not is_email(value):
            raise UsageError(f"{value!r} is not an email address")
        return value, None
    domain = value.lstrip("@")
    if not _valid_domain(domain):
        raise UsageError(f"{value!r} is neither an email address nor a domain")
    return None, domain


def parse_csv(text: str) -> tuple[list[dict[str, str]], list[str]]:
    """Rows of a customers CSV and the problems found, each naming its line."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if not ({"email", "domain"} & set(header)):
        return [], ["line 1: the header needs an 'email' or a 'domain' column"]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        return [], [f"line 1: unknown column(s) {', '.join(unknown)}; expected {CSV_COLUMNS}"]
    reader.fieldnames = header
    rows, problems = [], []
    for row in reader:
        line = reader.line_num
        values = {k: (row.get(k) or "").strip() for k in CSV_COLUMNS}
        if not any(values.values()):
            continue
        email, domain = values["email"].lower(), values["domain"].lower().lstrip("@")
        if bool(email) == bool(domain):
            problems.append(f"line {line}: give either an email or a domain")
        elif email and not is_email(email):
            problems.append(f"line {line}: {email!r} is not an email address")
        elif domain and not _valid_domain(domain):
            problems.append(f"line {line}: {domain!r} is not a domain")
        else:
            rows.append(values | {"email": email, "domain": domain})
    return rows, problems


def cmd_customers(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    rows: list[dict[str, str]] = []
    if args.customers_command == "import":
        rows, problems = _read_csv(args.file)
        if problems:
            for problem in problems:
                print(f"error: {args.file}: {problem}", file=err)
            return EX_ERROR
    app = env.open_app()
    try:
        now = app.clock.now()
        if args.customers_command == "list":
            _list(args, settings.daemon.base_url, now, out)
            return EX_OK
        with app.db.atomic():
            if args.customers_command == "import":
                _import(rows, now, out)
            else:
                _change(args, settings.daemon.base_url, now, out)
        return EX_OK
    finally:
        app.close()


def _read_csv(file: str) -> tuple[list[dict[str, str]], list[str]]:
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{file}: {exc}") from exc
    return parse_csv(text)


def _list(args: argparse.Namespace, base_url: str, now: datetime, out: TextIO) -> None:
    data = []
    for c in Customer.select().order_by(Customer.domain, Customer.email):
        key = customers.list_key(c.email, now, create=False) if c.email else None
        data.append(
            {
                "email": c.email,
                "domain": c.domain,
                "name": c.name,
                "organization": c.organization,
                "tickets": customers.tickets_query(c.email).count() if c.email else None,
                "link": customers.list_link(base_url, key) if key else None,
            }
        )
    if args.json:
        print_json(data, out)
        return
    for row in data:
        row["email"] = row["email"] or f"@{row['domain']}"
    columns = [("email", "EMAIL/DOMAIN"), ("name", "NAME")]
    columns += [("organization", "ORGANIZATION"), ("tickets", "TICKETS")]
    print_table(data, [*columns, ("link", "LINK")], out, empty="no customers")


def _import(rows: list[dict[str, str]], now: datetime, out: TextIO) -> None:
    created = 0
    for row in rows:
        _, new = customers.add_customer(
            now,
            email=row["email"] or None,
            domain=row["domain"] or None,
            name=row["name"],
            organization=row["organization"],
        )
        created += new
    print(f"{created} customer(s) added, {len(rows) - created} updated", file=out)


def _change(args: argparse.Namespace, base_url: str, now: datetime, out: TextIO) -> None:
    """``add``, ``remove`` or ``rotate-link`` of one address or domain."""
    email, domain = parse_target(args.address)
    if args.customers_command == "add":
        _, new = customers.add_customer(
            now, email=email, domain=domain, name=args.name, organization=args.organization
        )
        print(f"{email or '@' + str(domain)} {'added' if new else 'updated'}", file=out)
    elif args.customers_command == "remove":
        if not customers.remove_customer(email or f"@{domain}"):
            raise UsageError(f"no customer {args.address}")
        print(f"{email or '@' + str(domain)} removed", file=out)
    else:  # rotate-link
        if email is None:
            raise UsageError("rotate-link takes an email address, not a domain")
        key = customers.rotate_list_key(email, now)
        print(customers.list_link(base_url, key), file=out)
