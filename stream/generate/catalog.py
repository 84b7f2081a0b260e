"""A grocery catalogue for the demo store, with prices per currency and search terms."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Product:
    product_id: int
    name: str
    category: str  # slug, used in URLs and properties
    brand: str
    prices: dict[str, float]  # currency -> shelf price
    query: str  # what a shopper types to find it


# name, category, brand, INR, USD, GBP, search term
_ROWS: tuple[tuple[str, str, str, float, float, float, str], ...] = (
    ("Toned Milk 1 L", "dairy-eggs", "Amul", 56, 1.99, 1.15, "milk"),
    ("Whole Milk 1 gal", "dairy-eggs", "Horizon Organic", 0, 6.49, 0, "milk"),
    ("Semi Skimmed Milk 2 pt", "dairy-eggs", "Arla", 0, 0, 1.55, "milk"),
    ("Farm Fresh Eggs 12 pack", "dairy-eggs", "More", 89, 3.99, 2.85, "eggs"),
    ("Greek Yogurt 400 g", "dairy-eggs", "Epigamia", 120, 4.79, 2.10, "yogurt"),
    ("Salted Butter 500 g", "dairy-eggs", "Amul", 285, 5.49, 2.75, "butter"),
    ("Cheddar Cheese Block 200 g", "dairy-eggs", "Britannia", 145, 3.99, 2.60, "cheese"),
    ("Paneer 200 g", "dairy-eggs", "Mother Dairy", 95, 4.49, 2.40, "paneer"),
    ("Bananas 6 pcs", "fruits-vegetables", "More Fresh", 48, 1.69, 0.95, "banana"),
    ("Royal Gala Apples 1 kg", "fruits-vegetables", "More Fresh", 210, 4.99, 2.50, "apple"),
    ("Tomatoes 1 kg", "fruits-vegetables", "More Fresh", 40, 3.49, 1.60, "tomato"),
    ("Onions 1 kg", "fruits-vegetables", "More Fresh", 38, 2.29, 1.10, "onion"),
    ("Potatoes 2 kg", "fruits-vegetables", "More Fresh", 70, 3.99, 1.75, "potato"),
    ("Hass Avocados 2 pcs", "fruits-vegetables", "More Fresh", 299, 2.99, 1.80, "avocado"),
    ("Baby Spinach 200 g", "fruits-vegetables", "More Fresh", 45, 3.99, 1.50, "spinach"),
    ("Alphonso Mangoes 1 dozen", "fruits-vegetables", "More Fresh", 899, 0, 0, "mango"),
    ("Lemons 4 pcs", "fruits-vegetables", "More Fresh", 30, 1.99, 0.90, "lemon"),
    ("Basmati Rice 5 kg", "staples", "India Gate", 649, 14.99, 9.50, "rice"),
    ("Whole Wheat Atta 5 kg", "staples", "Aashirvaad", 289, 9.99, 6.50, "atta"),
    ("Toor Dal 1 kg", "staples", "Tata Sampann", 179, 5.99, 3.40, "dal"),
    ("Sunflower Oil 1 L", "staples", "Fortune", 165, 4.99, 2.95, "oil"),
    ("Extra Virgin Olive Oil 500 ml", "staples", "Figaro", 599, 8.99, 5.25, "olive oil"),
    ("Iodised Salt 1 kg", "staples", "Tata", 28, 1.29, 0.65, "salt"),
    ("Sugar 1 kg", "staples", "More", 48, 2.49, 1.20, "sugar"),
    ("Penne Pasta 500 g", "staples", "Barilla", 160, 2.19, 1.35, "pasta"),
    ("Rolled Oats 1 kg", "breakfast", "Quaker", 199, 5.49, 2.25, "oats"),
    ("Corn Flakes 475 g", "breakfast", "Kellogg's", 190, 4.29, 2.35, "cereal"),
    ("Peanut Butter Crunchy 510 g", "breakfast", "Pintola", 269, 3.99, 2.70, "peanut butter"),
    ("Whole Wheat Bread 400 g", "bakery", "Harvest Gold", 55, 3.49, 1.40, "bread"),
    ("Butter Croissants 4 pack", "bakery", "More Bakery", 160, 4.99, 2.00, "croissant"),
    ("Masala Chai 250 g", "beverages", "Tata Tea", 140, 5.99, 3.20, "tea"),
    ("Instant Coffee 100 g", "beverages", "Nescafe", 355, 7.49, 4.50, "coffee"),
    ("Orange Juice 1 L", "beverages", "Tropicana", 125, 4.29, 2.15, "juice"),
    ("Sparkling Water 6 x 500 ml", "beverages", "Bisleri", 180, 4.99, 2.80, "water"),
    ("Cola 2 L", "beverages", "Coca-Cola", 99, 2.99, 2.05, "coke"),
    ("Potato Chips Classic Salted", "snacks", "Lay's", 20, 2.49, 1.25, "chips"),
    ("Dark Chocolate 100 g", "snacks", "Amul", 110, 3.49, 1.95, "chocolate"),
    ("Digestive Biscuits 400 g", "snacks", "McVitie's", 95, 3.29, 1.45, "biscuits"),
    ("Salted Cashews 200 g", "snacks", "More", 299, 6.99, 3.50, "cashew"),
    ("Instant Noodles 4 pack", "snacks", "Maggi", 56, 2.99, 1.60, "noodles"),
    ("Chicken Breast 500 g", "meat-seafood", "Licious", 289, 7.99, 4.25, "chicken"),
    ("Atlantic Salmon Fillet 250 g", "meat-seafood", "More Fresh", 799, 9.99, 4.75, "salmon"),
    ("Frozen Green Peas 500 g", "frozen", "Safal", 95, 2.29, 1.10, "peas"),
    ("Vanilla Ice Cream 1 L", "frozen", "Kwality Walls", 245, 5.99, 3.00, "ice cream"),
    ("Dishwash Liquid 750 ml", "household", "Vim", 170, 3.99, 1.85, "dishwash"),
    ("Laundry Detergent 2 kg", "household", "Surf Excel", 499, 12.99, 7.50, "detergent"),
    ("Toilet Tissue 9 rolls", "household", "Origami", 360, 8.99, 4.95, "tissue"),
    ("Garbage Bags 30 pcs", "household", "Ezee", 110, 6.49, 2.30, "garbage bags"),
    ("Toothpaste 150 g", "personal-care", "Colgate", 105, 3.79, 1.85, "toothpaste"),
    ("Shampoo 340 ml", "personal-care", "Dove", 325, 6.99, 3.75, "shampoo"),
    ("Hand Wash Refill 750 ml", "personal-care", "Dettol", 199, 4.49, 2.50, "hand wash"),
    ("Baby Diapers Medium 56 pcs", "baby-care", "Pampers", 1099, 24.99, 11.00, "diapers"),
)

CURRENCIES: tuple[str, ...] = ("INR", "USD", "GBP")


def _build() -> tuple[Product, ...]:
    products = []
    for index, (name, category, brand, inr, usd, gbp, query) in enumerate(_ROWS):
        prices = {
            currency: float(price)
            for currency, price in zip(CURRENCIES, (inr, usd, gbp), strict=True)
            if price
        }
        products.append(Product(10_001 + index * 7, name, category, brand, prices, query))
    return tuple(products)


PRODUCTS: tuple[Product, ...] = _build()

# What each market's shelves carry, and which terms shoppers there type.
BY_CURRENCY: dict[str, tuple[Product, ...]] = {
    currency: tuple(p for p in PRODUCTS if currency in p.prices) for currency in CURRENCIES
}
QUERIES: dict[str, tuple[str, ...]] = {
    currency: tuple(dict.fromkeys(p.query for p in products))
    for currency, products in BY_CURRENCY.items()
}
MATCHES: dict[tuple[str, str], tuple[Product, ...]] = {
    (currency, query): tuple(p for p in products if p.query == query)
    for currency, products in BY_CURRENCY.items()
    for query in QUERIES[currency]
}
CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(p.category for p in PRODUCTS))
