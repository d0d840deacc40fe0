"""What the tests know of the ``demo`` seed (``cdms_api.simulator.seed``): account names, their
keys, and the properties an account has."""

from cdms_api.simulator.seed import demo_key

ACME = "Acme Holdings"
WIDGETS = "Acme Widgets"  # a subsidiary of ACME
OBRIEN = "O'Brien & Sons"
ORGANIC = "100% Organic Farms"
CAFE = "Café Münster GmbH"
NORTHWIND = "Northwind Traders"
CONTOSO = "Contoso Consulting"
FABRIKAM = "Fabrikam Design"  # every optional column null
TOKYO = "東京トレーディング"
ROCKET = "Rocket 🚀 Labs"
ALL = {ACME, WIDGETS, OBRIEN, ORGANIC, CAFE, NORTHWIND, CONTOSO, FABRIKAM, TOKYO, ROCKET}
ACME_KEY = demo_key(ACME)

ADA = "Ada Lovelace"
ALAN = "Alan Turing"
SEAN = "Seán O'Brien"
GRACE = "Grace Hopper"
KATHERINE = "Katherine Johnson"  # no organisation
SMITH = "Smith Smith"  # first name equals last name
PEOPLE = {ADA, ALAN, SEAN, GRACE, KATHERINE, SMITH}

ACCOUNT_PROPERTIES = {
    "accountid",
    "name",
    "accountnumber",
    "websiteurl",
    "telephone1",
    "numberofemployees",
    "revenue",
    "new_ukbased",
    "new_foundedon",
    "industrycode",
    "_parentaccountid_value",
    "createdon",
    "overriddencreatedon",
    "modifiedon",
    "versionnumber",
}

#: Every entity set of the default schema, the system tables included.
ENTITY_SETS = (
    "accounts",
    "contacts",
    "emails",
    "customeraddresses",
    "new_samples",
    "sdkmessages",
    "sdkmessagefilters",
)
