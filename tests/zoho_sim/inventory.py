"""Field tables and values of the standard modules beyond Leads and Contacts
(Deals, Accounts, Products, Price_Books, Quotes, Sales_Orders,
Purchase_Orders, Invoices, Vendors, Cases, Tasks, Calls, Events), their
line-item subforms (Quoted_Items, Ordered_Items, Invoiced_Items,
Purchase_Items), and the field types only they use: userlookup,
multiuserlookup, multiselectlookup, subform, fileupload, imageupload,
autonumber, Tag (text/jsonarray), layout, rich text (textarea type
rich_text), What_Id with $se_module.

Internal values (beside those documented in datagen.py):

    userlookup          -> user id str or None
    multiuserlookup     -> tuple of user id str
    multiselectlookup   -> tuple of (id, name)
    subform             -> tuple of row dicts (internal values of the
                           subform's fields, "id" included, no Parent_Id:
                           that is the parent's (id, name))
    fileupload          -> tuple of (file id, file name, size)
    imageupload         -> tuple of (file id, file name, size)
    autonumber          -> str
    Tag (gen "tag")     -> tuple of tag names
    layout              -> (id, name)
    What_Id (gen "what")-> (id, name, module) — module is $se_module
"""

import zlib

# Module numbers of the modules this file adds (datagen.KNOWN_MODULE_NUMS
# holds the older ones).
MODULE_NUMS = {
    "Price_Books": 11, "Sales_Orders": 12, "Purchase_Orders": 13, "Invoices": 14,
    "Calls": 15, "Events": 16,
    "Quoted_Items": 21, "Ordered_Items": 22, "Invoiced_Items": 23, "Purchase_Items": 24,
}

# subform api name -> (parent module, subform field on the parent, label)
SUBFORMS = {
    "Quoted_Items": ("Quotes", "Quoted Items"),
    "Ordered_Items": ("Sales_Orders", "Ordered Items"),
    "Invoiced_Items": ("Invoices", "Invoiced Items"),
    "Purchase_Items": ("Purchase_Orders", "Purchase Items"),
}
SUBFORM_OF = {parent: sf for sf, (parent, _) in SUBFORMS.items()}

# Types Bulk Read does not export (zoho-api.md §3.5, §9 item 17): a job
# naming one fails, an all-fields job leaves them out.
NOT_EXPORTABLE = ("subform", "multiselectlookup", "multiuserlookup", "fileupload", "imageupload")
# Types Get Records returns only when one record is fetched by id
# (zoho-api.md §4.3 last row; multiuserlookup treated like multiselectlookup).
SINGLE_ONLY = ("subform", "multiselectlookup", "multiuserlookup")
RICH_TEXT_LIMIT = 500        # Get Records truncates rich text (zoho-api.md §4.2)

# data types json_value below renders (besides the Tag, a text field)
OWN_TYPES = frozenset(("userlookup", "multiuserlookup", "multiselectlookup", "fileupload",
                       "imageupload", "layout", "subform"))

EXTRA_JSON_TYPES = {
    "userlookup": "jsonobject", "multiuserlookup": "jsonarray", "multiselectlookup": "jsonarray",
    "subform": "jsonarray", "fileupload": "jsonarray", "imageupload": "jsonarray",
    "autonumber": "string", "layout": "jsonobject",
}

# ----------------------------------------------------------- word lists --
STAGES = ["Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
          "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review", "Closed Won",
          "Closed Lost", "Closed Lost to Competition"]
DEAL_TYPES = ["None", "Existing Business", "New Business"]
ACCOUNT_TYPES = ["Analyst", "Competitor", "Customer", "Distributor", "Integrator", "Investor",
                 "Other", "Partner", "Press", "Prospect", "Reseller", "Supplier", "Vendor"]
OWNERSHIP = ["Other", "Private", "Public", "Subsidiary", "Partnership", "Government"]
PRODUCT_CATEGORIES = ["Hardware", "Software", "CRM Applications", "Services, Support"]
MANUFACTURERS = ["AltvetPet Inc.", "LexPon Inc.", "MetBeat Corp.", "Zylker \"Labs\""]
USAGE_UNITS = ["Box", "Carton", "Dozen", "Each", "Hour(s)", "Impressions", "Lb", "M", "Pack",
               "Pages", "Pieces", "Quantity", "Reams", "Sheet", "Spiral Binder", "Sq Ft"]
TAXES = ["Sales Tax", "VAT", "Service Tax", "GST 5%", "Vat, reduced"]
PRICING_MODELS = ["None", "Flat", "Differential"]
GL_ACCOUNTS = ["Sales-Software", "Sales-Hardware", "Rental-Income", "Interest-Income",
               "Sales-Software-Support", "Sales Other", "Internet Sales", "Service-Hardware Labor",
               "Sales-Books"]
QUOTE_STAGES = ["Draft", "Negotiation", "Delivered", "On Hold", "Confirmed", "Closed Won", "Closed Lost"]
CARRIERS = ["FedEX", "UPS", "USPS", "DHL", "BlueDart"]
SO_STATUSES = ["Created", "Approved", "Delivered", "Cancelled"]
PO_STATUSES = ["Created", "Approved", "Delivered", "Cancelled"]
INVOICE_STATUSES = ["Created", "Approved", "Delivered", "Cancelled", "Paid, partly"]
CASE_STATUSES = ["New", "On Hold", "Escalated", "Closed"]
PRIORITIES = ["High", "Highest", "Low", "Lowest", "Normal"]
CASE_ORIGINS = ["Email", "Phone", "Web"]
CASE_TYPES = ["Problem", "Feature Request", "Question"]
CASE_REASONS = ["User did not attend any training", "Complex functionality", "Existing problem",
                "Instructions not clear", "New problem"]
TASK_STATUSES = ["Not Started", "Deferred", "In Progress", "Completed", "Waiting for input"]
CALL_TYPES = ["Outbound", "Inbound", "Missed"]
CALL_PURPOSES = ["None", "Prospecting", "Administrative", "Negotiation", "Demo", "Project", "Desk"]
CALL_RESULTS = ["Interested", "Not interested", "No response/Busy", "Requested more info",
                "Requested call back", "Invalid number"]
PRODUCT_NAMES = ["Laptop \"Pro\" 14", "Docking Station, USB-C", "CRM Licence — annual",
                 "Support Plan 24/7", "Café Machine Ø", "ケーブル 2m", "Widget\nmulti-line",
                 "Consulting hour", "Server Rack 42U", "Mouse 🖱"]
VENDOR_NAMES = ["Zylker Supplies", "Acme Wholesale, Ltd.", "Müller Großhandel", "東京部品",
                "\"Best\" Parts Co.", "Nordic Components AS"]
DEAL_NAMES = ["Renewal 2027", "Expansion, EMEA", "Pilot \"Phase 2\"", "New logo",
              "Upsell — Analytics", "Migration project", "サポート契約"]
QUOTE_NAMES = ["Q-Hardware refresh", "Q-Licences", "Q-Services, annual", "Q-\"Rush\" order"]
SO_NAMES = ["SO-Hardware", "SO-Licences", "SO-Services"]
CONTACT_NAMES = ["Ana García", "Zoë O'Brien", "山田 太郎", "Jean-Luc Picard", "Ngozi Okafor"]
TAG_NAMES = ["VIP", "Q3 push", "Partner-led", "Écosystème", "needs review", "2027"]
LAYOUTS = [("5725767000000091055", "Standard"), ("5725767000000091077", "Enterprise Sales")]
FILE_NAMES = ["contract.pdf", "Angebot Müller.docx", "scan 2026-05-01.png", "見積書.xlsx",
              "notes, final \"v2\".txt"]
IMAGE_NAMES = ["front.jpg", "side view.png", "ラベル.png"]
RICH_BITS = ["<p><b>Payment terms</b>: 30 days net.</p>",
             "<ul><li>Deliver to dock 7</li><li>Call before &amp; after</li></ul>",
             "<p style=\"color:rgb(255, 0, 0)\">Late fee 1.5% per month.</p>",
             "<p>Référence client: «ZX-42» — merci!</p>",
             "<table><tr><td>Line</td><td>Amount, USD</td></tr></table>",
             "<p>絵文字 🎉 and\nnew lines\r\ninside.</p>"]
SE_MODULES = ["Accounts", "Deals", "Products", "Quotes", "Sales_Orders", "Purchase_Orders",
              "Invoices", "Cases", "Vendors", "Price_Books"]
ROLES = [("5725767000000026005", "CEO"), ("5725767000000026008", "Manager"),
         ("5725767000000026011", "Sales Rep")]
PROFILES = [("5725767000000026011", "Administrator"), ("5725767000000026014", "Standard")]

NAMES_BY_MODULE = {
    "Products": PRODUCT_NAMES, "Vendors": VENDOR_NAMES, "Deals": DEAL_NAMES,
    "Quotes": QUOTE_NAMES, "Sales_Orders": SO_NAMES, "Contacts": CONTACT_NAMES,
    "Purchase_Orders": ["PO-Parts", "PO-Office"], "Invoices": ["INV-Services", "INV-Hardware"],
    "Cases": ["Printer jams", "Login fails, again"], "Price_Books": ["Retail 2027", "Partner \"Gold\""],
}

# ------------------------------------------------------------ tables ----
# Same row shape as datagen's tables:
# (api_name, label, data_type, length, flags, gen, extra)
# flags: r read_only, c custom, m system_mandatory, o optional


def _head(owner_label):
    return [("id", "Record Id", "bigint", 19, "r", "id", None),
            ("Owner", owner_label, "ownerlookup", 120, "", "owner", None)]


def _tail():
    return [("Created_By", "Created By", "ownerlookup", 120, "r", "creator", None),
            ("Modified_By", "Modified By", "ownerlookup", 120, "r", "modifier", None),
            ("Created_Time", "Created Time", "datetime", 120, "r", "created_time", None),
            ("Modified_Time", "Modified Time", "datetime", 120, "r", "modified_time", None)]


def _tag_layout():
    return [("Tag", "Tag", "text", 2000, "", "tag", None),
            ("Layout", "Layout", "layout", 120, "", "layout", None)]


def _address(prefix):
    return [("%s_Street" % prefix, "%s Street" % prefix, "text", 250, "o", "street", None),
            ("%s_City" % prefix, "%s City" % prefix, "text", 100, "o", "city", None),
            ("%s_State" % prefix, "%s State" % prefix, "text", 100, "o", "state", None),
            ("%s_Code" % prefix, "%s Code" % prefix, "text", 30, "o", "zip", None),
            ("%s_Country" % prefix, "%s Country" % prefix, "text", 100, "o", "country", None)]


def _totals():
    return [("Sub_Total", "Sub Total", "currency", 16, "r", "sub_total", None),
            ("Discount", "Discount", "currency", 16, "o", "small_money", None),
            ("Tax", "Tax", "currency", 16, "o", "small_money", None),
            ("Adjustment", "Adjustment", "currency", 16, "o", "small_money", None),
            ("Grand_Total", "Grand Total", "currency", 16, "r", "grand_total", None)]


def _accounts():
    return _head("Account Owner") + [
        ("Account_Name", "Account Name", "text", 200, "m", "company", None),
        ("Account_Number", "Account Number", "text", 40, "o", "handle", None),
        ("Account_Type", "Account Type", "picklist", 120, "o", "picklist", ACCOUNT_TYPES),
        ("Industry", "Industry", "picklist", 120, "o", "picklist", ["Retail", "Manufacturing",
                                                                     "Government/Military", "ERP"]),
        ("Parent_Account", "Parent Account", "lookup", 120, "o", "ref", "Accounts"),
        ("Phone", "Phone", "phone", 30, "o", "phone", None),
        ("Fax", "Fax", "phone", 30, "o", "phone", None),
        ("Website", "Website", "website", 255, "o", "website", None),
        ("Ownership", "Ownership", "picklist", 120, "o", "picklist", OWNERSHIP),
        ("Employees", "Employees", "integer", 9, "o", "employees", None),
        ("Annual_Revenue", "Annual Revenue", "currency", 16, "o", "money", None),
        ("SIC_Code", "SIC Code", "integer", 9, "o", "small_int", None),
        ("Ticker_Symbol", "Ticker Symbol", "text", 30, "o", "handle", None),
    ] + _address("Billing") + [
        ("Description", "Description", "textarea", 32000, "o", "description", None),
        ("External_Account_Id", "External Account Id", "bigint", 19, "co", "bigint", None),
        ("Key_Account", "Key Account", "boolean", 5, "c", "bool", None),
    ] + _tag_layout() + _tail()


def _deals():
    return _head("Deal Owner") + [
        ("Deal_Name", "Deal Name", "text", 120, "m", "ref_name", "Deals"),
        ("Amount", "Amount", "currency", 16, "o", "money", None),
        ("Stage", "Stage", "picklist", 120, "", "picklist", STAGES),
        ("Closing_Date", "Closing Date", "date", 20, "o", "future_date", None),
        ("Account_Name", "Account Name", "lookup", 120, "o", "account", "Accounts"),
        ("Contact_Name", "Contact Name", "lookup", 120, "o", "ref", "Contacts"),
        ("Type", "Type", "picklist", 120, "o", "picklist", DEAL_TYPES),
        ("Lead_Source", "Lead Source", "picklist", 120, "o", "picklist", ["Advertisement", "Cold Call",
                                                                           "Partner", "Web Download"]),
        ("Probability", "Probability (%)", "percent", 5, "o", "percent", None),
        ("Expected_Revenue", "Expected Revenue", "currency", 16, "ro", "money", None),
        ("Next_Step", "Next Step", "text", 100, "o", "designation", None),
        ("Description", "Description", "textarea", 32000, "o", "description", None),
        ("Reviewer", "Reviewer", "userlookup", 120, "co", "user", None),
        ("Deal_Team", "Deal Team", "multiuserlookup", 2000, "c", "users", None),
        ("Partner_Accounts", "Partner Accounts", "multiselectlookup", 2000, "c", "mlookup", "Accounts"),
        ("Contract", "Contract", "fileupload", 2000, "c", "files", None),
        ("Competitors", "Competitors", "multiselectpicklist", 2000, "co", "multi",
         ["Globex", "Initech", "Hooli", "Umbrella, Corp.", "Café Rival"]),
    ] + _tag_layout() + _tail()


def _products():
    return _head("Product Owner") + [
        ("Product_Name", "Product Name", "text", 200, "m", "ref_name", "Products"),
        ("Product_Code", "Product Code", "text", 40, "o", "handle", None),
        ("Product_Active", "Product Active", "boolean", 5, "", "bool", None),
        ("Product_Category", "Product Category", "picklist", 120, "o", "picklist", PRODUCT_CATEGORIES),
        ("Manufacturer", "Manufacturer", "picklist", 120, "o", "picklist", MANUFACTURERS),
        ("Vendor_Name", "Vendor Name", "lookup", 120, "o", "ref", "Vendors"),
        ("Unit_Price", "Unit Price", "currency", 16, "o", "price", None),
        ("Commission_Rate", "Commission Rate", "currency", 16, "o", "small_money", None),
        ("Tax", "Tax", "multiselectpicklist", 2000, "o", "multi", TAXES),
        ("Taxable", "Taxable", "boolean", 5, "", "bool", None),
        ("Usage_Unit", "Usage Unit", "picklist", 120, "o", "picklist", USAGE_UNITS),
        ("Qty_Ordered", "Qty Ordered", "double", 16, "o", "qty", None),
        ("Qty_in_Stock", "Qty in Stock", "double", 16, "o", "qty", None),
        ("Reorder_Level", "Reorder Level", "double", 16, "o", "qty", None),
        ("Sales_Start_Date", "Sales Start Date", "date", 20, "o", "future_date", None),
        ("Support_Expiry_Date", "Support Expiry Date", "date", 20, "o", "future_date", None),
        ("Product_Image", "Product Image", "imageupload", 2000, "c", "images", None),
        ("Description", "Description", "textarea", 32000, "o", "description", None),
    ] + _tag_layout() + _tail()


def _price_books():
    return _head("Price Book Owner") + [
        ("Price_Book_Name", "Price Book Name", "text", 120, "m", "ref_name", "Price_Books"),
        ("Active", "Active", "boolean", 5, "", "bool", None),
        ("Pricing_Model", "Pricing Model", "picklist", 120, "o", "picklist", PRICING_MODELS),
        ("Description", "Description", "textarea", 32000, "o", "description", None),
    ] + _tail()


def _vendors():
    return _head("Vendor Owner") + [
        ("Vendor_Name", "Vendor Name", "text", 120, "m", "ref_name", "Vendors"),
        ("Email", "Email", "email", 100, "o", "email", None),
        ("Phone", "Phone", "phone", 30, "o", "phone", None),
        ("Website", "Website", "website", 255, "o", "website", None),
        ("GL_Account", "GL Account", "picklist", 120, "o", "picklist", GL_ACCOUNTS),
        ("Category", "Category", "text", 100, "o", "department", None),
        ("Street", "Street", "text", 250, "o", "street", None),
        ("City", "City", "text", 100, "o", "city", None),
        ("State", "State", "text", 100, "o", "state", None),
        ("Zip_Code", "Zip Code", "text", 30, "o", "zip", None),
        ("Country", "Country", "text", 100, "o", "country", None),
        ("Description", "Description", "textarea", 32000, "o", "description", None),
    ] + _tail()


def _inventory(kind):
    """Quotes, Sales_Orders, Purchase_Orders, Invoices."""
    sf = SUBFORM_OF[kind]
    rows = _head({"Quotes": "Quote Owner", "Sales_Orders": "Sales Order Owner",
                  "Purchase_Orders": "Purchase Order Owner", "Invoices": "Invoice Owner"}[kind])
    rows.append(("Subject", "Subject", "text", 255, "m", "ref_name", kind))
    if kind == "Quotes":
        rows += [("Quote_Stage", "Quote Stage", "picklist", 120, "o", "picklist", QUOTE_STAGES),
                 ("Valid_Till", "Valid Till", "date", 20, "o", "future_date", None),
                 ("Deal_Name", "Deal Name", "lookup", 120, "o", "ref", "Deals"),
                 ("Account_Name", "Account Name", "lookup", 120, "o", "account", "Accounts"),
                 ("Contact_Name", "Contact Name", "lookup", 120, "o", "ref", "Contacts"),
                 ("Carrier", "Carrier", "picklist", 120, "o", "picklist", CARRIERS),
                 ("Team", "Team", "text", 100, "o", "department", None)]
    elif kind == "Sales_Orders":
        rows += [("SO_Number", "SO Number", "autonumber", 40, "r", "autonumber", "SO-"),
                 ("Status", "Status", "picklist", 120, "o", "picklist", SO_STATUSES),
                 ("Due_Date", "Due Date", "date", 20, "o", "future_date", None),
                 ("Quote_Name", "Quote Name", "lookup", 120, "o", "ref", "Quotes"),
                 ("Deal_Name", "Deal Name", "lookup", 120, "o", "ref", "Deals"),
                 ("Account_Name", "Account Name", "lookup", 120, "o", "account", "Accounts"),
                 ("Contact_Name", "Contact Name", "lookup", 120, "o", "ref", "Contacts"),
                 ("Customer_No", "Customer No", "text", 40, "o", "handle", None),
                 ("Purchase_Order", "Purchase Order", "text", 40, "o", "handle", None),
                 ("Carrier", "Carrier", "picklist", 120, "o", "picklist", CARRIERS),
                 ("Excise_Duty", "Excise Duty", "currency", 16, "o", "small_money", None),
                 ("Sales_Commission", "Sales Commission", "currency", 16, "o", "small_money", None)]
    elif kind == "Purchase_Orders":
        rows += [("PO_Number", "PO Number", "autonumber", 40, "r", "autonumber", "PO-"),
                 ("PO_Date", "PO Date", "date", 20, "o", "future_date", None),
                 ("Status", "Status", "picklist", 120, "o", "picklist", PO_STATUSES),
                 ("Vendor_Name", "Vendor Name", "lookup", 120, "o", "ref", "Vendors"),
                 ("Contact_Name", "Contact Name", "lookup", 120, "o", "ref", "Contacts"),
                 ("Tracking_Number", "Tracking Number", "text", 40, "o", "handle", None),
                 ("Requisition_No", "Requisition No", "text", 40, "o", "handle", None),
                 ("Carrier", "Carrier", "picklist", 120, "o", "picklist", CARRIERS),
                 ("Excise_Duty", "Excise Duty", "currency", 16, "o", "small_money", None)]
    else:
        rows += [("Invoice_Number", "Invoice Number", "autonumber", 40, "r", "autonumber", "INV-"),
                 ("Invoice_Date", "Invoice Date", "date", 20, "o", "future_date", None),
                 ("Due_Date", "Due Date", "date", 20, "o", "future_date", None),
                 ("Status", "Status", "picklist", 120, "o", "picklist", INVOICE_STATUSES),
                 ("Sales_Order", "Sales Order", "lookup", 120, "o", "ref", "Sales_Orders"),
                 ("Deal_Name", "Deal Name", "lookup", 120, "o", "ref", "Deals"),
                 ("Account_Name", "Account Name", "lookup", 120, "o", "account", "Accounts"),
                 ("Contact_Name", "Contact Name", "lookup", 120, "o", "ref", "Contacts"),
                 ("Purchase_Order", "Purchase Order", "text", 40, "o", "handle", None),
                 ("Excise_Duty", "Excise Duty", "currency", 16, "o", "small_money", None),
                 ("Sales_Commission", "Sales Commission", "currency", 16, "o", "small_money", None),
                 ("Payment_Notes", "Payment Notes", "textarea", 50000, "co", "rich", "rich_text")]
    rows += [(sf, SUBFORMS[sf][1], "subform", 2000, "", "lines", sf)]
    rows += _totals()
    rows += _address("Billing") + [
        ("Terms_and_Conditions", "Terms and Conditions", "textarea", 32000, "o", "description", None),
        ("Description", "Description", "textarea", 32000, "o", "description", None),
    ] + _tag_layout() + _tail()
    return rows


def _cases():
    return _head("Case Owner") + [
        ("Case_Number", "Case Number", "autonumber", 40, "r", "autonumber", ""),
        ("Subject", "Subject", "text", 255, "m", "ref_name", "Cases"),
        ("Status", "Status", "picklist", 120, "", "picklist", CASE_STATUSES),
        ("Priority", "Priority", "picklist", 120, "o", "picklist", PRIORITIES),
        ("Case_Origin", "Case Origin", "picklist", 120, "o", "picklist", CASE_ORIGINS),
        ("Type", "Type", "picklist", 120, "o", "picklist", CASE_TYPES),
        ("Case_Reason", "Case Reason", "picklist", 120, "o", "picklist", CASE_REASONS),
        ("Product_Name", "Product Name", "lookup", 120, "o", "ref", "Products"),
        ("Account_Name", "Account Name", "lookup", 120, "o", "account", "Accounts"),
        ("Deal_Name", "Deal Name", "lookup", 120, "o", "ref", "Deals"),
        ("Related_To", "Related To", "lookup", 120, "o", "ref", "Contacts"),
        ("Email", "Email", "email", 100, "o", "email", None),
        ("Phone", "Phone", "phone", 30, "o", "phone", None),
        ("No_of_comments", "No. of comments", "integer", 9, "ro", "small_int", None),
        ("Description", "Description", "textarea", 32000, "o", "description", None),
        ("Internal_Comments", "Internal Comments", "textarea", 32000, "o", "description", None),
        ("Solution", "Solution", "textarea", 32000, "o", "description", None),
        ("Resolution", "Resolution", "textarea", 50000, "co", "rich", "rich_text"),
        ("Escalation_Date", "Escalation Date", "datetime", 120, "co", "some_time", None),
    ] + _tag_layout() + _tail()


def _tasks():
    return _head("Task Owner") + [
        ("Subject", "Subject", "text", 255, "m", "designation", None),
        ("Due_Date", "Due Date", "date", 20, "o", "future_date", None),
        ("Status", "Status", "picklist", 120, "", "picklist", TASK_STATUSES),
        ("Priority", "Priority", "picklist", 120, "o", "picklist", PRIORITIES),
        ("Who_Id", "Contact Name", "lookup", 120, "o", "ref", "Contacts"),
        ("What_Id", "Related To", "lookup", 120, "o", "what", None),
        ("Send_Notification_Email", "Send Notification Email", "boolean", 5, "", "bool", None),
        ("Closed_Time", "Closed Time", "datetime", 120, "ro", "some_time", None),
        ("Description", "Description", "textarea", 32000, "o", "description", None),
    ] + _tag_layout() + _tail()


def _calls():
    return _head("Call Owner") + [
        ("Subject", "Subject", "text", 255, "m", "designation", None),
        ("Call_Type", "Call Type", "picklist", 120, "", "picklist", CALL_TYPES),
        ("Call_Purpose", "Call Purpose", "picklist", 120, "o", "picklist", CALL_PURPOSES),
        ("Call_Start_Time", "Call Start Time", "datetime", 120, "", "some_time", None),
        ("Call_Duration", "Call Duration", "text", 10, "o", "duration", None),
        ("Call_Duration_in_seconds", "Call Duration (in seconds)", "integer", 9, "ro", "small_int", None),
        ("Call_Result", "Call Result", "picklist", 120, "o", "picklist", CALL_RESULTS),
        ("Who_Id", "Contact Name", "lookup", 120, "o", "ref", "Contacts"),
        ("What_Id", "Related To", "lookup", 120, "o", "what", None),
        ("Call_Agenda", "Call Agenda", "text", 255, "o", "designation", None),
        ("Description", "Description", "textarea", 32000, "o", "description", None),
    ] + _tag_layout() + _tail()


def _events():
    return _head("Host") + [
        ("Event_Title", "Title", "text", 255, "m", "designation", None),
        ("Start_DateTime", "From", "datetime", 120, "", "some_time", None),
        ("End_DateTime", "To", "datetime", 120, "", "some_time", None),
        ("All_day", "All day", "boolean", 5, "", "bool", None),
        ("Venue", "Location", "text", 255, "o", "street", None),
        ("Who_Id", "Contact Name", "lookup", 120, "o", "ref", "Contacts"),
        ("What_Id", "Related To", "lookup", 120, "o", "what", None),
        ("Check_In_Time", "Check-In Time", "datetime", 120, "ro", "some_time", None),
        ("Check_In_Address", "Check-In Address", "text", 255, "ro", "street", None),
        ("Description", "Description", "textarea", 32000, "o", "description", None),
    ] + _tag_layout() + _tail()


def _line_items(sf):
    parent = SUBFORMS[sf][0]
    return [
        ("id", "Record Id", "bigint", 19, "r", "id", None),
        ("Product_Name", "Product Name", "lookup", 120, "m", "ref", "Products"),
        ("Quantity", "Quantity", "double", 16, "m", "line_qty", None),
        ("List_Price", "List Price", "currency", 16, "", "price", None),
        ("Discount", "Discount", "currency", 16, "", "line_discount", None),
        ("Tax", "Tax", "currency", 16, "", "line_tax", None),
        ("Total", "Total", "currency", 16, "r", "line_total", None),
        ("Net_Total", "Net Total", "currency", 16, "r", "line_net", None),
        ("Description", "Description", "textarea", 2000, "o", "description", None),
        ("Sequence_Number", "Sequence Number", "integer", 9, "r", "seq", None),
        ("Parent_Id", "Parent Id", "lookup", 120, "r", "parent", parent),
    ]


TABLES = {
    "Accounts": _accounts, "Deals": _deals, "Products": _products, "Price_Books": _price_books,
    "Vendors": _vendors, "Quotes": lambda: _inventory("Quotes"),
    "Sales_Orders": lambda: _inventory("Sales_Orders"),
    "Purchase_Orders": lambda: _inventory("Purchase_Orders"),
    "Invoices": lambda: _inventory("Invoices"), "Cases": _cases, "Tasks": _tasks, "Calls": _calls,
    "Events": _events,
}


def table_for(module):
    """The field table of a module this file knows, or None."""
    if module in TABLES:
        return TABLES[module]()
    if module in SUBFORMS:
        return _line_items(module)
    return None


# --------------------------------------------------------- metadata -----
def extend_meta(meta, dtype, gen, extra, fid, module_id_fn):
    """Type-specific keys of the fields metadata (§6) for the types above."""
    if gen == "tag":
        meta["json_type"] = "jsonarray"
    if dtype == "textarea" and extra == "rich_text":
        meta["textarea"] = {"type": "rich_text"}
    if dtype == "lookup" and gen == "what":
        # What_Id is polymorphic: the record's $se_module names the module.
        meta["lookup"] = {"display_label": "Related To", "api_name": "What_Id",
                          "module": {"api_name": "se_module", "id": None}, "id": fid}
    if dtype == "userlookup":
        meta["lookup"] = {"display_label": "Users", "api_name": "users",
                          "module": {"api_name": "users", "id": None}, "id": fid}
    if dtype == "multiselectlookup":
        link = "%s_X_%s" % (meta["api_name"], extra)
        meta["multiselectlookup"] = {
            "display_label": meta["field_label"], "linking_module": {"api_name": link,
                                                                     "id": module_id_fn(link)},
            "connected_module": {"api_name": extra, "id": module_id_fn(extra)},
            "lookup_apiname": extra, "api_name": meta["api_name"], "connectedfield_apiname": extra,
            "id": fid}
    if dtype == "multiuserlookup":
        link = "%s_X_Users" % meta["api_name"]
        meta["multiuserlookup"] = {
            "display_label": meta["field_label"], "linking_module": {"api_name": link,
                                                                     "id": module_id_fn(link)},
            "connected_module": {"api_name": "users", "id": None},
            "lookup_apiname": "users", "api_name": meta["api_name"], "id": fid}
    if dtype == "subform":
        # Zoho's fields metadata names the subform module of a subform
        # field; seen both as `subform` and `associated_module`: both given.
        meta["subform"] = {"module": {"api_name": extra, "id": module_id_fn(extra)}, "id": fid}
        meta["associated_module"] = {"module": extra, "id": module_id_fn(extra)}
    if dtype == "autonumber":
        meta["auto_number"] = {"prefix": extra or "", "suffix": "", "start_number": 1}
    if dtype == "layout":
        meta["layout"] = {}


# ------------------------------------------------------------ values ----
def ref_lookup(module, k):
    """A deterministic (id, name) of a record of `module` (ids in a region of
    their own, like datagen.account_lookup)."""
    from datagen import BASE_ID, ID_STRIDE, MODULE_SPAN, module_num
    names = NAMES_BY_MODULE.get(module) or ["%s #%d" % (module, k % 50)]
    k = k % 50
    rid = str(BASE_ID + module_num(module) * MODULE_SPAN + 900_000_000 + (k + 1) * ID_STRIDE)
    return (rid, names[k % len(names)])


def rich_text(rng):
    n = rng.choice([1, 2, 3, 8, 14, 20])         # > 500 characters now and then
    return "".join(rng.choice(RICH_BITS) for _ in range(n))


def gen_value(fd, rng, ctx):
    """Values of the generators this file adds; None when `fd.gen` is not one."""
    import datagen
    g = fd.gen
    if g == "ref":
        return ref_lookup(fd.meta["lookup"]["module"]["api_name"], rng.randint(0, 1000))
    if g == "ref_name":
        v = rng.choice(fd.choices or datagen.COMPANIES)
        if rng.random() < 0.5:
            v = "%s #%d" % (v, rng.randint(1, 9999))
        return v
    if g == "what":
        mod = rng.choice(SE_MODULES)
        rid, name = ref_lookup(mod, rng.randint(0, 1000)) if mod != "Accounts" else \
            datagen.account_lookup(rng.randint(0, 1000))
        return (rid, name, mod)
    if g == "user":
        return rng.choice(datagen.USER_IDS)
    if g == "users":
        if rng.random() < 0.3:
            return ()
        return tuple(sorted(rng.sample(datagen.USER_IDS, rng.randint(1, 3))))
    if g == "mlookup":
        if rng.random() < 0.3:
            return ()
        ks = sorted(rng.sample(range(14), rng.randint(1, 3)))
        return tuple(datagen.account_lookup(k) for k in ks)
    if g in ("files", "images"):
        if rng.random() < 0.4:
            return ()
        names = FILE_NAMES if g == "files" else IMAGE_NAMES
        return tuple(("%032x" % rng.getrandbits(128), rng.choice(names), rng.randint(100, 5_000_000))
                     for _ in range(rng.randint(1, 2)))
    if g == "tag":
        if rng.random() < 0.5:
            return ()
        return tuple(sorted(rng.sample(TAG_NAMES, rng.randint(1, 3)), key=TAG_NAMES.index))
    if g == "layout":
        return LAYOUTS[0] if rng.random() < 0.8 else LAYOUTS[1]
    if g == "rich":
        return rich_text(rng)
    if g == "small_money":
        return round(rng.uniform(0, 500), 2)
    if g == "price":
        return round(rng.uniform(1, 20_000), 2)
    if g == "qty":
        return float(rng.randint(0, 5000))
    if g == "small_int":
        return rng.randint(0, 9999)
    if g == "some_time":
        return ctx["anchor"] - rng.randint(0, 60 * 86400) + rng.randint(0, 30 * 86400)
    if g == "duration":
        return "%02d:%02d" % (rng.randint(0, 90), rng.randint(0, 59))
    return NOGEN


NOGEN = object()          # gen_value: not a generator of this file
# Generators filled after the field loop (fill_record, recompute_totals) or
# derived when rendering: never drawn by gen_value, never picked for an edit.
DERIVED_GENS = {"lines", "autonumber", "sub_total", "grand_total", "parent", "seq",
                "line_total", "line_net", "line_qty", "line_discount", "line_tax"}
# Types whose empty value is an empty tuple, not None.
TUPLE_TYPES = ("multiselectpicklist", "multiuserlookup", "multiselectlookup", "subform",
               "fileupload", "imageupload")


def line_row(rng, row_id, seq):
    """One line item (internal values)."""
    qty = float(rng.randint(1, 40))
    price = round(rng.uniform(1, 5_000), 2)
    total = round(qty * price, 2)
    disc = round(total * rng.choice([0, 0, 0.05, 0.1]), 2)
    tax = round((total - disc) * rng.choice([0, 0.07, 0.19]), 2)
    desc = None
    if rng.random() < 0.6:
        import datagen
        desc = rng.choice(datagen.SENTENCES)
    return {"id": row_id, "Product_Name": ref_lookup("Products", rng.randint(0, 1000)),
            "Quantity": qty, "List_Price": price, "Discount": disc, "Tax": tax, "Total": total,
            "Net_Total": round(total - disc + tax, 2), "Description": desc, "Sequence_Number": seq}


def fix_line(row):
    """Recompute a row's Total and Net_Total after an edit."""
    qty, price = row.get("Quantity") or 0.0, row.get("List_Price") or 0.0
    total = round(qty * price, 2)
    row["Total"] = total
    row["Net_Total"] = round(total - (row.get("Discount") or 0.0) + (row.get("Tax") or 0.0), 2)
    return row


def initial_row_id(sf, parent_index, k):
    from datagen import BASE_ID, MODULE_SPAN, module_num
    return str(BASE_ID + module_num(sf) * MODULE_SPAN + (parent_index + 1) * 100 + k)


def initial_lines(sf, rng, parent_index):
    return tuple(line_row(rng, initial_row_id(sf, parent_index, k), k + 1)
                 for k in range(rng.randint(0, 5)))


def recompute_totals(rec, fdefs):
    """Sub_Total = sum of the lines' Net_Total; Grand_Total = Sub_Total -
    Discount + Tax + Adjustment (the parent's own)."""
    sfd = [fd for fd in fdefs if fd.data_type == "subform"]
    if not sfd or not any(fd.api_name == "Sub_Total" for fd in fdefs):
        return rec
    sub = round(sum(r.get("Net_Total") or 0.0 for r in rec.get(sfd[0].api_name) or ()), 2)
    rec["Sub_Total"] = sub
    rec["Grand_Total"] = round(sub - (rec.get("Discount") or 0.0) + (rec.get("Tax") or 0.0)
                               + (rec.get("Adjustment") or 0.0), 2)
    return rec


def autonumber(fd, index):
    return "%s%05d" % (fd.meta["auto_number"]["prefix"], index + 1)


def fill_record(rec, fdefs, rng, module, index, anchor):
    """Generator values that need the record index (autonumbers, lines)."""
    for fd in fdefs:
        if fd.gen == "autonumber":
            rec[fd.api_name] = autonumber(fd, index)
        elif fd.gen == "lines":
            rec[fd.api_name] = initial_lines(fd.meta["subform"]["module"]["api_name"], rng, index)
    recompute_totals(rec, fdefs)
    return rec


def mutate_lines(rng, rows, new_id):
    """Edit, add or remove line items: returns the new tuple of rows."""
    rows = [dict(r) for r in rows]
    op = rng.choice(["edit", "add", "remove"]) if rows else "add"
    if op == "edit":
        r = rng.choice(rows)
        what = rng.choice(["Quantity", "List_Price", "Discount", "Description"])
        if what == "Quantity":
            r["Quantity"] = float(rng.randint(1, 60))
        elif what == "List_Price":
            r["List_Price"] = round(rng.uniform(1, 5_000), 2)
        elif what == "Discount":
            r["Discount"] = round(rng.uniform(0, 50), 2)
        else:
            import datagen
            r["Description"] = rng.choice(datagen.SENTENCES)
        fix_line(r)
    elif op == "add":
        seq = max([r["Sequence_Number"] for r in rows] or [0]) + 1
        rows.append(line_row(rng, new_id(), seq))
    else:
        rows.remove(rng.choice(rows))
    return tuple(rows)


# --------------------------------------------------------- rendering ----
def user_json(uid, users):
    if uid is None:
        return None
    u = users.get(uid)
    return {"name": u["name"], "id": u["id"], "email": u["email"]} if u else {"name": None, "id": uid}


def line_json(row, sfdefs, parent_ref, tz, truncate=False):
    import datagen
    out = {}
    for fd in sfdefs:
        if fd.api_name == "Parent_Id":
            out["Parent_Id"] = {"name": parent_ref[1], "id": parent_ref[0]}
        else:
            out[fd.api_name] = datagen.json_value(fd, row.get(fd.api_name), tz)
    return out


def json_value(fd, v, tz, ctx=None):
    """JSON of this file's types; (False, None) when not one of them."""
    import datagen
    dt = fd.data_type
    if fd.gen == "tag":
        return True, [{"name": t, "id": tag_id(t), "color_code": "#%06X" % (zlib.crc32(t.encode()) & 0xFFFFFF)}
                      for t in (v or ())]
    if dt == "userlookup":
        return True, user_json(v, datagen.USER_BY_ID)
    if dt == "multiuserlookup":
        return True, [{"users": user_json(u, datagen.USER_BY_ID), "id": link_id(fd, u)} for u in (v or ())]
    if dt == "multiselectlookup":
        mod = fd.meta["multiselectlookup"]["connected_module"]["api_name"]
        return True, [{mod: {"name": n, "id": i}, "id": link_id(fd, i)} for i, n in (v or ())]
    if dt == "fileupload":
        return True, [{"File_Name__s": n, "Size__s": str(sz), "File_Id__s": fid, "attachment_Id": fid[:19],
                       "id": link_id(fd, fid)} for fid, n, sz in (v or ())]
    if dt == "imageupload":
        return True, [{"Description__s": None, "File_Name__s": n, "Size__s": sz, "Preview_Id__s": fid,
                       "File_Id__s": fid, "State__s": "active", "id": link_id(fd, fid)}
                      for fid, n, sz in (v or ())]
    if dt == "layout":
        return True, ({"name": v[1], "id": v[0]} if v else None)
    if dt == "subform":
        sf = (ctx or {}).get("subforms", {}).get(fd.api_name)
        if sf is None:
            return True, []
        return True, [line_json(r, sf, ctx["parent"], tz) for r in (v or ())]
    return False, None


def tag_id(name):
    return str(5725767000000300000 + zlib.crc32(name.encode("utf-8")) % 99991)


def link_id(fd, key):
    return str(5725767000000800000 + zlib.crc32(("%s|%s" % (fd.api_name, key)).encode("utf-8")) % 999983)


def csv_cell_fn(fd):
    """CSV cell function for this file's types, or None."""
    dt = fd.data_type
    if fd.gen == "tag":
        return lambda v: ";".join(v) if v else ""
    if dt in ("userlookup",):
        return lambda v: "" if v is None else v
    if dt == "layout":
        return lambda v: "" if v is None else v[0]
    if dt == "autonumber":
        return lambda v: "" if v is None else v
    return None
