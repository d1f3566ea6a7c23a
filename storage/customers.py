"""Known customers (SPEC §13) and the per-address ticket-list keys (SPEC §12).

Callers hold the transaction. Addresses and domains are stored lower-case.
"""

from __future__ import annotations

import secrets
from datetime import datetime

import peewee as pw
from maild.storage.models import Customer, CustomerLink, Ticket, TicketCC, to_storage


def new_list_key() -> str:
    """192 random bits, URL-safe (as ticket keys)."""
    return secrets.token_urlsafe(24)


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1].lower() if "@" in address else ""


def is_known(address: str) -> bool:
    """The address, or its whole domain, is in the ``customer`` table."""
    address = address.lower()
    if not address:
        return False
    domain = domain_of(address)
    clause = Customer.email == address
    if domain:
        clause = clause | (Customer.domain == domain)
    return Customer.select().where(clause).exists()


def tickets_query(address: str) -> pw.ModelSelect:
    """Every ticket on which ``address`` is requester or CC."""
    address = address.lower()
    as_cc = TicketCC.select(TicketCC.ticket).where(TicketCC.address == address)
    return Ticket.select().where((Ticket.requester == address) | (Ticket.id.in_(as_cc)))


def has_tickets(address: str) -> bool:
    return bool(address) and tickets_query(address).exists()


def add_customer(
    now: datetime,
    *,
    email: str | None = None,
    domain: str | None = None,
    name: str = "",
    organization: str = "",
) -> tuple[Customer, bool]:
    """Insert or update one customer; (row, created)."""
    if (email is None) == (domain is None):
        raise ValueError("give exactly one of email or domain")
    email = email.strip().lower() if email else None
    domain = domain.strip().lower().lstrip("@") if domain else None
    where = Customer.email == email if email else Customer.domain == domain
    row = Customer.get_or_none(where)
    if row is not None:
        row.name = name or row.name
        row.organization = organization or row.organization
        row.save()
        return row, False
    row = Customer.create(
        email=email,
        domain=domain,
        name=name,
        organization=organization,
        created_at=to_storage(now),
    )
    return row, True


def remove_customer(value: str) -> bool:
    """Remove the address (``a@b``) or domain (``b`` or ``@b``); True when one was there."""
    value = value.strip().lower()
    if "@" in value and not value.startswith("@"):
        where = Customer.email == value
    else:
        where = Customer.domain == value.lstrip("@")
    return Customer.delete().where(where).execute() > 0


def list_key(address: str, now: datetime, *, create: bool = True) -> str | None:
    """The address's ticket-list key, made on first use when ``create``."""
    address = address.lower()
    row = CustomerLink.get_or_none(CustomerLink.address == address)
    if row is not None:
        return row.access_key
    if not create or not address:
        return None
    # One statement: a concurrent first use of the same address keeps one key.
    CustomerLink.insert(
        address=address, access_key=new_list_key(), created_at=to_storage(now)
    ).on_conflict_ignore().execute()
    return CustomerLink.get(CustomerLink.address == address).access_key


def rotate_list_key(address: str, now: datetime) -> str:
    """A new key for the address's list; the old link answers 404 from now on."""
    address = address.lower()
    key = new_list_key()
    updated = (
        CustomerLink.update(access_key=key, created_at=to_storage(now))
        .where(CustomerLink.address == address)
        .execute()
    )
    if not updated:
        CustomerLink.create(address=address, access_key=key, created_at=to_storage(now))
    return key


def address_for_key(key: str) -> str | None:
    row = CustomerLink.get_or_none(CustomerLink.access_key == key)
    return row.address if row is not None else None


def list_link(base_url: str, key: str) -> str:
    return f"{base_url.rstrip('/')}/c/{key}"
