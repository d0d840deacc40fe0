"""Seed data: ``demo`` (a small, realistic CRM) or ``none``."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .app import Simulator

NAMESPACE = uuid.UUID("5f0c8e7e-2f55-4c55-9a43-6f9c1c0c0d01")


def demo_key(name: str) -> str:
    """Stable keys, so that the demo and the docs can name records."""
    return str(uuid.uuid5(NAMESPACE, name))


ACCOUNTS = [
    # name, website, phone, employees, revenue, uk based, founded on, industry, parent
    (
        "Acme Holdings",
        "https://acme.example",
        "+44 20 7946 0000",
        1200,
        Decimal("25000000.00"),
        True,
        "1987-03-14",
        6,
        None,
    ),
    (
        "Acme Widgets",
        "https://widgets.acme.example",
        "+44 20 7946 0001",
        85,
        Decimal("4200000.50"),
        True,
        "2003-11-02",
        10,
        "Acme Holdings",
    ),
    (
        "O'Brien & Sons",
        None,
        "+353 1 555 0100",
        12,
        Decimal("750000"),
        False,
        "1999-06-30",
        5,
        None,
    ),
    ("100% Organic Farms", "https://organic.example", None, 40, None, True, "2011-01-01", 2, None),
    (
        "Café Münster GmbH",
        None,
        "+49 251 555 0199",
        23,
        Decimal("1300000.25"),
        False,
        "2015-09-09",
        8,
        None,
    ),
    (
        "Northwind Traders",
        "https://northwind.example",
        "+1 206 555 0123",
        300,
        Decimal("98000000"),
        False,
        "1994-07-04",
        10,
        None,
    ),
    (
        "Contoso Consulting",
        "https://contoso.example",
        "+44 161 496 0000",
        45,
        Decimal("3100000"),
        True,
        "2008-02-29",
        7,
        None,
    ),
    ("Fabrikam Design", None, None, None, None, None, None, 9, None),
    (
        "東京トレーディング",
        None,
        "+81 3 5555 0100",
        510,
        Decimal("61000000"),
        False,
        "1972-10-10",
        10,
        None,
    ),
    (
        "Rocket 🚀 Labs",
        "https://rocket.example",
        None,
        7,
        Decimal("150000"),
        True,
        "2021-04-01",
        6,
        None,
    ),
]
CONTACTS = [
    ("Ada", "Lovelace", "ada@acme.example", "1815-12-10", "Acme Holdings"),
    ("Alan", "Turing", "alan@acme.example", "1912-06-23", "Acme Widgets"),
    ("Seán", "O'Brien", "sean@obrien.example", "1970-03-17", "O'Brien & Sons"),
    ("Grace", "Hopper", "grace@contoso.example", "1906-12-09", "Contoso Consulting"),
    ("Katherine", "Johnson", None, "1918-08-26", None),
    ("Smith", "Smith", "smith@northwind.example", None, "Northwind Traders"),
]


def seed_demo(simulator: Simulator) -> None:
    accounts = []
    for name, web, phone, staff, revenue, uk, founded, industry, parent in ACCOUNTS:
        record = {
            "accountid": demo_key(name),
            "name": name,
            "websiteurl": web,
            "telephone1": phone,
            "numberofemployees": staff,
            "revenue": revenue,
            "new_ukbased": uk,
            "new_foundedon": founded,
            "industrycode": industry,
        }
        if parent:
            record["parentaccountid@odata.bind"] = f"/accounts({demo_key(parent)})"
        accounts.append(record)
    simulator.load("accounts", accounts)
    simulator.load(
        "contacts",
        [
            {
                "contactid": demo_key(f"{first} {last}"),
                "firstname": first,
                "lastname": last,
                "emailaddress1": email,
                "birthdate": born,
                **(
                    {"parentcustomerid_account@odata.bind": f"/accounts({demo_key(account)})"}
                    if account
                    else {}
                ),
            }
            for first, last, email, born, account in CONTACTS
        ],
    )


SEEDS = {"demo": seed_demo, "none": lambda simulator: None}
