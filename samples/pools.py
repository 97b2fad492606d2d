"""Fictional names, places, banks and goods the synthetic documents are drawn from.

Every entity here is invented or generic; numbers on the documents come from `ids`.
"""

from __future__ import annotations

# (English, Devanagari) pairs: names appear in both scripts on Aadhaar and PAN cards.
MALE_NAMES = (
    ("Rahul", "राहुल"), ("Amit", "अमित"), ("Suresh", "सुरेश"), ("Vikram", "विक्रम"),
    ("Arjun", "अर्जुन"), ("Rajesh", "राजेश"), ("Sanjay", "संजय"), ("Anil", "अनिल"),
    ("Deepak", "दीपक"), ("Manoj", "मनोज"), ("Prakash", "प्रकाश"), ("Rohit", "रोहित"),
    ("Nikhil", "निखिल"), ("Aditya", "आदित्य"), ("Harish", "हरीश"), ("Kishore", "किशोर"),
)
FEMALE_NAMES = (
    ("Priya", "प्रिया"), ("Anjali", "अंजलि"), ("Sunita", "सुनीता"), ("Kavita", "कविता"),
    ("Neha", "नेहा"), ("Pooja", "पूजा"), ("Meera", "मीरा"), ("Lakshmi", "लक्ष्मी"),
    ("Shreya", "श्रेया"), ("Divya", "दिव्या"), ("Ritu", "रितु"), ("Asha", "आशा"),
)
MIDDLE_NAMES = (("Kumar", "कुमार"), ("Prasad", "प्रसाद"), ("Chandra", "चन्द्र"), ("Nath", "नाथ"))
SURNAMES = (
    ("Sharma", "शर्मा"), ("Verma", "वर्मा"), ("Gupta", "गुप्ता"), ("Patel", "पटेल"),
    ("Singh", "सिंह"), ("Reddy", "रेड्डी"), ("Iyer", "अय्यर"), ("Nair", "नायर"),
    ("Joshi", "जोशी"), ("Mehta", "मेहता"), ("Chauhan", "चौहान"), ("Mishra", "मिश्रा"),
    ("Yadav", "यादव"), ("Agarwal", "अग्रवाल"), ("Deshmukh", "देशमुख"), ("Kulkarni", "कुलकर्णी"),
    ("Banerjee", "बनर्जी"), ("Trivedi", "त्रिवेदी"), ("Saxena", "सक्सेना"), ("Bhatt", "भट्ट"),
)

# (city, GST state code, state, PIN prefix, MICR city code)
CITIES = (
    ("Mumbai", "27", "Maharashtra", "400", "400"),
    ("Pune", "27", "Maharashtra", "411", "411"),
    ("Bengaluru", "29", "Karnataka", "560", "560"),
    ("Chennai", "33", "Tamil Nadu", "600", "600"),
    ("Hyderabad", "36", "Telangana", "500", "500"),
    ("New Delhi", "07", "Delhi", "110", "110"),
    ("Kolkata", "19", "West Bengal", "700", "700"),
    ("Ahmedabad", "24", "Gujarat", "380", "380"),
    ("Jaipur", "08", "Rajasthan", "302", "302"),
    ("Lucknow", "09", "Uttar Pradesh", "226", "226"),
    ("Kochi", "32", "Kerala", "682", "682"),
    ("Gurugram", "06", "Haryana", "122", "122"),
)
STREETS = (
    "MG Road", "Link Road", "Station Road", "Nehru Nagar", "Gandhi Chowk", "Ring Road",
    "Park Street", "Anna Salai", "Banjara Hills Road No. 3", "Civil Lines", "Residency Road",
    "Lal Bahadur Shastri Marg", "Sector 14", "Old Airport Road",
)
BUILDINGS = (
    "Sai Krupa Apartments", "Shanti Niketan", "Green Park Residency", "Laxmi Towers",
    "Ganga Complex", "Sunrise Enclave", "Royal Heights", "Vasant Vihar Society",
)

# (bank name, IFSC bank code, MICR bank code, statement accent colour RGB 0-1)
BANKS = (
    ("State Bank of India", "SBIN", "002", (0.12, 0.31, 0.62)),
    ("HDFC Bank", "HDFC", "240", (0.04, 0.23, 0.50)),
    ("ICICI Bank", "ICIC", "229", (0.68, 0.18, 0.10)),
    ("Axis Bank", "UTIB", "211", (0.55, 0.10, 0.27)),
    ("Punjab National Bank", "PUNB", "024", (0.58, 0.12, 0.16)),
    ("Bank of Baroda", "BARB", "012", (0.85, 0.40, 0.10)),
    ("Kotak Mahindra Bank", "KKBK", "485", (0.80, 0.10, 0.15)),
    ("Canara Bank", "CNRB", "015", (0.10, 0.45, 0.70)),
)

MERCHANTS = (
    "SWIGGY", "ZOMATO", "BIGBASKET", "AMAZON PAY", "FLIPKART", "RELIANCE FRESH",
    "DMART AVENUE", "IRCTC", "INDIAN OIL PETROL", "APOLLO PHARMACY", "AIRTEL PREPAID",
    "TATA POWER", "BSES RAJDHANI", "JIO FIBER", "MAKEMYTRIP", "URBAN COMPANY",
)
EMPLOYERS = (
    "INFOSYS LTD", "TATA CONSULTANCY SERVICES", "WIPRO LIMITED", "LARSEN AND TOUBRO",
    "MAHINDRA LOGISTICS", "SUNRISE TEXTILES PVT LTD",
)

# Seller/buyer businesses for GST invoices: (name, holder-type letter for the PAN)
IN_BUSINESSES = (
    ("Shree Ganesh Traders", "F"), ("Navbharat Electricals Pvt Ltd", "C"),
    ("Kaveri Agro Foods LLP", "F"), ("Vardhaman Steel Industries", "F"),
    ("Sahyadri Office Solutions Pvt Ltd", "C"), ("Annapurna Kitchenware", "F"),
    ("Deccan Software Services Pvt Ltd", "C"), ("Rangoli Textiles", "F"),
    ("Himalaya Hardware Stores", "F"), ("Coromandel Packaging Ltd", "C"),
)

# (description, HSN/SAC, GST rate %, unit, unit price range in rupees)
IN_GOODS = (
    ("Stainless Steel Kitchen Sink 24x18 in", "73241000", 18, "NOS", (2400, 6800)),
    ("LED Bulb 9W Cool Daylight (pack of 10)", "85395000", 18, "PAC", (450, 900)),
    ("Basmati Rice Premium 25 kg bag", "10063020", 5, "BAG", (1800, 3200)),
    ("Assam CTC Tea 1 kg", "09024020", 5, "KGS", (280, 520)),
    ("Ceiling Fan 1200 mm with regulator", "84145110", 18, "NOS", (1500, 3900)),
    ("Ergonomic Office Chair, mesh back", "94013000", 18, "NOS", (3500, 12500)),
    ("Cotton Kurta, handloom", "62114210", 5, "PCS", (450, 950)),
    ("Packaged Drinking Water 20 L jar", "22011010", 18, "NOS", (60, 120)),
    ("Copier Paper A4 75 gsm (5 reams)", "48025690", 18, "BOX", (1200, 1700)),
    ("Laptop Backpack, water resistant", "42021290", 18, "NOS", (900, 2600)),
    ("IT consulting services (man-days)", "998314", 18, "DAY", (8000, 25000)),
    ("Annual software maintenance contract", "998316", 18, "NOS", (15000, 90000)),
    ("Groundnut Oil, cold pressed 15 L tin", "15081000", 5, "TIN", (2600, 3600)),
    ("Copper Wire 2.5 sq mm, 90 m coil", "85444999", 18, "NOS", (2200, 4200)),
)

UK_SUPPLIERS = (
    ("Harrow & Finch Supplies Ltd", ("14 Kingsway", "Leeds", "LS1 4AB")),
    ("Thistledown Office Furniture Ltd", ("Unit 7, Riverside Park", "Reading", "RG1 8DN")),
    ("Bramblegate Heating Services Ltd", ("3 Quarry Lane", "Sheffield", "S11 8UP")),
    ("Oakhollow Books & Stationery", ("52 Castle Street", "Cardiff", "CF10 1BW")),
    ("Northwind Digital Ltd", ("Floor 2, 90 Deansgate", "Manchester", "M3 2QG")),
)
UK_CUSTOMERS = (
    ("Brightwater Dental Practice", ("22 Mill Lane", "Bristol", "BS1 5TT")),
    ("Calder Valley Primary School", ("School Road", "Hebden Bridge", "HX7 8AB")),
    ("Marlow & Sons Builders", ("8 Orchard Close", "Oxford", "OX4 2JR")),
    ("The Copper Kettle Cafe", ("1 Market Place", "York", "YO1 7LN")),
    ("Elmstead Veterinary Surgery", ("40 High Street", "Colchester", "CO1 1DJ")),
)
# (description, VAT rate %, unit price range in pounds)
UK_GOODS = (
    ("Ergonomic office chair", 20, (89, 320)),
    ("USB-C docking station", 20, (65, 210)),
    ("Consultancy (day rate)", 20, (450, 950)),
    ("Annual boiler service", 20, (70, 140)),
    ("Heating oil, domestic (litres)", 5, (0.6, 0.95)),
    ("Loft insulation materials (roll)", 5, (18, 45)),
    ("Child car seat", 5, (60, 240)),
    ("Printed books", 0, (6, 40)),
    ("Children's school uniform", 0, (8, 30)),
    ("Loose leaf tea, 1 kg", 0, (12, 35)),
)
UK_BANKS = (("WEST", "NatWest"), ("BARC", "Barclays"), ("LOYD", "Lloyds Bank"), ("HBUK", "HSBC UK"))
