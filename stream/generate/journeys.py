"""What happens inside a session, and the order-service events a purchase sets off.

One ``Journeys`` object writes every record of the stream, in generation order, with the
time at which it would reach the gateway (``arrivals``). Within a session events are
5-90 s apart and the SDK's upload delay is constant, so a device's records arrive in
order; ``arrival.py`` then adds retries and late uploads.
"""

from __future__ import annotations

import bisect
import random
from typing import Any

from stream.generate import catalog, geo
from stream.generate.agents import SOURCE_IOS
from stream.generate.model import CATEGORIES, ORDER_SERVICE, SessionTruth
from stream.generate.orders import order_events
from stream.generate.people import DeviceState, Person, new_uuid

SESSION_GAP_MS = 31 * 60_000  # more than the default 30 min inactivity timeout
_HOME = "moreretail.com/home"
# Crash probability per app session by app version: older builds crash more.
_CRASH_RATE = {"5.2.1": 0.008, "5.2.0": 0.012, "5.1.4": 0.035, "5.0.3": 0.06}
_CRASHES = {
    "iOS": (
        ("EXC_BAD_ACCESS (SIGSEGV) in CartViewController", "EXC_BAD_ACCESS"),
        ("NSRangeException: index 3 beyond bounds [0 .. 2]", "NSRangeException"),
        ("Watchdog timeout (0x8badf00d) on launch", "WatchdogTermination"),
        ("NSInvalidArgumentException: unrecognized selector", "NSInvalidArgumentException"),
    ),
    "Android": (
        ("NullPointerException in ProductDetailFragment", "java.lang.NullPointerException"),
        ("IllegalStateException: Fragment not attached", "java.lang.IllegalStateException"),
        ("OutOfMemoryError decoding product image", "java.lang.OutOfMemoryError"),
        ("DeadObjectException from payment SDK", "android.os.DeadObjectException"),
    ),
}
_TYPOS = ("amul buter", "tomatos", "bannana", "detergant", "chiken")
_REFERRERS = ("https://www.google.com/", "https://www.instagram.com/", "https://www.bing.com/")
_PAYMENT = {
    "INR": (("upi", "card", "cod", "wallet"), (0.55, 0.22, 0.16, 0.07)),
    "USD": (("card", "apple_pay", "google_pay", "paypal"), (0.64, 0.2, 0.08, 0.08)),
    "GBP": (("card", "apple_pay", "google_pay", "paypal"), (0.62, 0.22, 0.08, 0.08)),
}
_QUANTITIES = (1, 2, 3, 4)
_QUANTITY_CUM = (0.62, 0.87, 0.96)  # cumulative shares of 1, 2, 3; the rest buy 4
_FREE_SHIPPING = {"INR": (199.0, 30.0), "USD": (35.0, 5.99), "GBP": (40.0, 3.99)}


class _SessionOver(Exception):
    """Unwinds a session at a crash or at the end of the window."""


class Journeys:
    """Simulates sessions and writes records; see the module docstring."""

    def __init__(self, rng: random.Random, start_ms: int, end_ms: int) -> None:
        self.rng = rng
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.records: list[dict[str, Any]] = []
        self.arrivals: list[int] = []
        self.sessions: list[SessionTruth] = []
        # Parallel to records, so later passes need not touch a million dicts again.
        self.devices: list[str | None] = []
        self.times: list[int] = []
        # Counted while writing (the dicts are hot in cache then); checked by the tests
        # against the stream itself.
        self.counts: dict[str, int] = {}
        self.seen_devices: set[str] = set()
        self.tied_devices: set[str] = set()
        self.logins_after_anonymous = 0
        self._order_base = rng.randrange(10_000_000, 90_000_000)
        self._orders = 0
        # The session being written.
        self._state: DeviceState | None = None
        self._user: str | None = None
        self._logged_in = False
        self._tied = False  # a record of this session carried the user id
        self._device_id = ""
        self._source = ""
        self._agent = ""
        self._ip = ""
        self._app = True
        self._t = 0
        self._last = 0  # time of the session's last written event
        self._latency = 0
        self._count = 0
        self._budget = 0  # events left before a crash; -1: no crash
        self._url = _HOME
        self._screen_name = ""
        self._cart: list[tuple[catalog.Product, int]] = []
        self._purchased = False

    # ---- one session -------------------------------------------------------------------

    def session(self, person: Person, state: DeviceState, start: int) -> int:
        """Write one session starting at ``start``; returns the time of its last event."""
        rng = self.rng
        device = state.device
        self._state = state
        self._user = person.user_id
        self._logged_in = state.logged_in and person.user_id is not None
        self._device_id = device.device_id
        self._source = device.source_id
        self._agent = device.user_agent
        self._app = device.is_app
        self._ip = state.home_ip
        if device.device_type != "desktop" and rng.random() < 0.4:
            self._ip = geo.cellular_ip(rng, person.city) or state.home_ip
        self._t = start
        self._last = start
        self._tied = False
        self._latency = rng.randint(200, 6000)
        self._count = 0
        self._cart = []
        self._purchased = False
        self._url = _HOME
        self._screen_name = ""
        crash = self._app and rng.random() < _CRASH_RATE.get(device.app_version, 0.01)
        self._budget = rng.randint(1, 14) if crash else -1
        end = "timeout"
        try:
            self._open(state)
            self._visit(person)
            if self._app and rng.random() < 0.86:
                self._wait()
                seconds = (self._t - start) // 1000
                self._emit(
                    "App Close", {"duration_seconds": seconds, "last_screen": self._screen_name}
                )
                end = "close"
        except _SessionOver as over:
            end = str(over) or end
        last = self._last
        if self._count:
            self.seen_devices.add(self._device_id)
            if self._tied:
                self.tied_devices.add(self._device_id)
            truth = SessionTruth(
                device_id=self._device_id,
                user_id=person.user_id,
                source_id=self._source,
                start_ms=start,
                end_ms=last,
                events=self._count,
                end=end,
                purchase=self._purchased,
            )
            self.sessions.append(truth)
        return last

    def _open(self, state: DeviceState) -> None:
        rng = self.rng
        device = state.device
        if not self._app:
            referrer = rng.choice(_REFERRERS) if rng.random() < 0.4 else ""
            self._screen("Home", "home", "Home | MoreRetail", referrer, first=True)
            return
        first = not state.installed
        push = not first and rng.random() < 0.08
        launch: dict[str, Any] = {
            "app_version": device.app_version,
            "os": device.os,
            "os_version": device.os_version,
            "device_model": device.model,
            "launch_type": "push" if push else "cold" if rng.random() < 0.7 else "warm",
            "first_launch": first,
        }
        self._emit("App Launch", launch, crashable=False)
        if first:
            source = "app_store" if device.source_id == SOURCE_IOS else "play_store"
            self._step(
                "App Install",
                {
                    "app_version": device.app_version,
                    "os": device.os,
                    "os_version": device.os_version,
                    "device_model": device.model,
                    "install_source": source,
                },
            )
            state.installed = True
        if push:
            campaign = rng.choice(("weekend-offers", "cart-reminder", "restock-alert"))
            self._step(
                "Push Opened",
                {
                    "campaign_id": campaign,
                    "message_id": f"{campaign}-{rng.randrange(10**6):06d}",
                    "action": "open",
                },
            )
        self._screen("Home", "home", "Home | MoreRetail")

    def _visit(self, person: Person) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.12:  # a glance, then gone
            return
        shopping = roll < 0.5 or (person.archetype == "power" and roll < 0.7)
        if person.orders and rng.random() < 0.15:
            order = person.orders[-1]
            self._screen("Orders", "orders", "Your orders | MoreRetail")
            self._screen("Order Details", f"order/{order}", f"Order {order} | MoreRetail")
        state = self._state
        assert state is not None  # noqa: S101 - set by session()
        if not state.logged_in and not state.anonymous and rng.random() < 0.3:
            self._login(person, state)
        want = rng.randint(2, 9) if shopping else rng.randint(1, 4)
        add_rate = 0.62 if shopping else 0.14
        for _ in range(want):
            product = self._find(person)
            if product is None:
                continue
            price = product.prices[person.currency]
            in_stock = rng.random() > 0.06
            self._step(
                "Product View",
                {
                    "product_id": str(product.product_id),
                    "product_name": product.name,
                    "category": product.category,
                    "brand": product.brand,
                    "price": price,
                    "currency": person.currency,
                    "in_stock": in_stock,
                },
            )
            if in_stock and rng.random() < add_rate:
                self._add(product, person.currency)
        if self._cart and rng.random() < 0.12:
            self._remove(person.currency)
        if shopping and self._cart:
            self._screen("Cart", "cart", "Cart | MoreRetail")
            if rng.random() < 0.7:
                self._checkout(person, state)

    def _find(self, person: Person) -> catalog.Product | None:
        # Indexing with random() is rng.choice() at a third of the cost; this runs per event.
        random_ = self.rng.random
        currency = person.currency
        roll = random_()
        if roll < 0.6:
            if random_() < 0.04:
                query = _TYPOS[int(random_() * len(_TYPOS))]
                self._screen("Search", f"search?q={query.replace(' ', '+')}", f"{query} | Search")
                self._step("Search", {"query": query, "results": 0})
                return None
            queries = catalog.QUERIES[currency]
            query = queries[int(random_() * len(queries))]
            matches = catalog.MATCHES[(currency, query)]
            self._screen("Search", f"search?q={query.replace(' ', '+')}", f"{query} | Search")
            results = len(matches) * (3 + int(random_() * 10))
            self._step("Search", {"query": query, "results": results})
            product = matches[int(random_() * len(matches))]
        else:
            shelf = catalog.BY_CURRENCY[currency]
            product = shelf[int(random_() * len(shelf))]
            if roll < 0.9:
                slug = product.category
                title = f"{slug.replace('-', ' ').title()} | MoreRetail"
                self._screen("Category", f"category/{slug}", title)
        self._screen("Product", f"product/{product.product_id}", f"{product.name} | MoreRetail")
        return product

    def _add(self, product: catalog.Product, currency: str) -> None:
        rng = self.rng
        quantity = _QUANTITIES[bisect.bisect(_QUANTITY_CUM, rng.random())]
        price = product.prices[currency]
        self._cart.append((product, quantity))
        self._step(
            "Add to Cart",
            {
                "item": product.name,
                "product_id": str(product.product_id),
                "category": product.category,
                "quantity": quantity,
                "price": price,
                "amount": round(price * quantity, 2),
                "currency": currency,
                "cart_value": self._cart_value(currency),
            },
        )

    def _remove(self, currency: str) -> None:
        product, quantity = self._cart.pop(self.rng.randrange(len(self._cart)))
        self._step(
            "Remove from Cart",
            {
                "item": product.name,
                "product_id": str(product.product_id),
                "quantity": quantity,
                "amount": round(product.prices[currency] * quantity, 2),
                "currency": currency,
                "cart_value": self._cart_value(currency),
            },
        )

    def _cart_value(self, currency: str) -> float:
        return round(sum(p.prices[currency] * q for p, q in self._cart), 2)

    def _checkout(self, person: Person, state: DeviceState) -> None:
        rng = self.rng
        currency = person.currency
        if not state.logged_in:
            if state.anonymous:
                self._screen("Login", "login", "Sign in | MoreRetail")
                return
            self._login(person, state)
        items = [
            {
                "product_id": str(p.product_id),
                "name": p.name,
                "category": p.category,
                "brand": p.brand,
                "quantity": q,
                "price": p.prices[currency],
            }
            for p, q in self._cart
        ]
        subtotal = self._cart_value(currency)
        count = sum(q for _, q in self._cart)
        self._screen("Checkout", "checkout", "Checkout | MoreRetail")
        self._step(
            "Begin Checkout",
            {"amount": subtotal, "currency": currency, "item_count": count, "items": items},
        )
        if rng.random() > 0.75:  # abandoned at payment
            return
        methods, weights = _PAYMENT[currency]
        method = rng.choices(methods, weights)[0]
        order_id = f"MR{self._order_base + self._orders}"
        self._orders += 1
        if method != "cod" and rng.random() < 0.04:
            self._step(
                "Payment Failed",
                {
                    "order_id": order_id,
                    "amount": subtotal,
                    "currency": currency,
                    "payment_method": method,
                    "reason": rng.choice(("insufficient_funds", "bank_timeout", "card_declined")),
                },
            )
        threshold, fee = _FREE_SHIPPING[currency]
        shipping = 0.0 if subtotal >= threshold else fee
        purchase: dict[str, Any] = {
            "order_id": order_id,
            "amount": 0.0,
            "currency": currency,
            "items": items,
            "payment_method": method,
            "discount": 0.0,
            "shipping": shipping,
        }
        if rng.random() < 0.18:
            purchase["coupon"] = "SAVE10"
            purchase["discount"] = round(subtotal * 0.1, 2)
        purchase["amount"] = round(subtotal - purchase["discount"] + shipping, 2)
        self._step("Purchase", purchase)
        self._purchased = True
        person.orders.append(order_id)
        placed = self._t
        self._screen("Order Confirmation", f"order/{order_id}", f"Order {order_id} | MoreRetail")
        self._deliver(person, order_id, placed, purchase["amount"], count)

    def _deliver(
        self, person: Person, order_id: str, placed: int, amount: float, count: int
    ) -> None:
        """Write the order service's events for one order, up to the end of the window."""
        rng = self.rng
        user = person.user_id
        assert user is not None  # noqa: S101 - only signed-in users can buy
        city, currency = person.city.name, person.currency
        for name, when, props in order_events(rng, order_id, city, currency, placed, amount, count):
            if when > self.end_ms:
                break
            record = {
                "event_name": name,
                "event_category": CATEGORIES[name],
                "time": when,
                "distinct_user_id": user,
                "insert_id": new_uuid(rng),
                "source_id": ORDER_SERVICE,
                "custom_properties": props,
            }
            self.records.append(record)
            self.arrivals.append(when + rng.randint(50, 1500))
            self.devices.append(None)
            self.times.append(when)
            self.counts[name] = self.counts.get(name, 0) + 1

    def _login(self, person: Person, state: DeviceState) -> None:
        rng = self.rng
        self._screen("Login", "login", "Sign in | MoreRetail")
        if person.city.country == "IN":
            method = "otp" if rng.random() < 0.75 else "google"
        else:
            method = rng.choices(("email", "google", "apple"), (0.5, 0.3, 0.2))[0]
            if method == "apple" and state.device.os != "iOS":
                method = "google"
        # Signing in never crashes: a device gets tied to its user by Sign Up or Login only.
        state.logged_in = True
        self._logged_in = True
        if not state.signed_up:
            state.signed_up = True
            opt_in = bool(person.traits.get("marketing_opt_in", False))
            self._wait()
            opt = {"method": method, "marketing_opt_in": opt_in}
            self._emit("Sign Up", opt, crashable=False)
        self._wait()
        self._emit("Login", {"method": method, "success": True}, crashable=False)
        self.logins_after_anonymous += 1  # the session began signed out

    # ---- writing records ---------------------------------------------------------------

    def _screen(
        self, name: str, path: str, title: str, referrer: str = "", first: bool = False
    ) -> None:
        url = "moreretail.com/" + path
        if self._app:
            props: dict[str, Any] = {"screen_name": name}
            if self._screen_name:
                props["previous_screen"] = self._screen_name
            self._url = url
            self._screen_name = name
            self._step("Screen View", props)
            return
        props = {"page_title": title, "path": "/" + path}
        if referrer or not first:
            props["referrer"] = referrer or "https://" + self._url
        self._url = url
        self._screen_name = name
        if first:
            self._emit("Page View", props, crashable=False)
        else:
            self._step("Page View", props)

    def _step(self, name: str, props: dict[str, Any]) -> None:
        r = self.rng.random()
        self._t += 5_000 + int(85_000 * r * r)
        self._emit(name, props)

    def _wait(self) -> None:
        """A user's pause between two events: 5-90 s, mostly short (same as in _step)."""
        r = self.rng.random()
        self._t += 5_000 + int(85_000 * r * r)

    def _emit(self, name: str, props: dict[str, Any], crashable: bool = True) -> None:
        t = self._t
        if t > self.end_ms:
            raise _SessionOver("timeout")
        if self._budget > 0 and crashable:
            self._budget -= 1
            if self._budget == 0:
                self._crash()
        if self._logged_in:
            self._tied = True
            record = {
                "event_name": name,
                "event_category": CATEGORIES[name],
                "time": t,
                "distinct_user_id": self._user,
                "device_id": self._device_id,
                "insert_id": new_uuid(self.rng),
                "source_id": self._source,
                "url": self._url,
                "ip": self._ip,
                "user_agent": self._agent,
                "custom_properties": props,
            }
        else:
            record = {
                "event_name": name,
                "event_category": CATEGORIES[name],
                "time": t,
                "device_id": self._device_id,
                "insert_id": new_uuid(self.rng),
                "source_id": self._source,
                "url": self._url,
                "ip": self._ip,
                "user_agent": self._agent,
                "custom_properties": props,
            }
        self.records.append(record)
        self.arrivals.append(t + self._latency)
        self._last = t
        self.devices.append(self._device_id)
        self.times.append(t)
        self.counts[name] = self.counts.get(name, 0) + 1
        self._count += 1

    def _crash(self) -> None:
        assert self._state is not None  # noqa: S101 - set by session()
        device = self._state.device
        reason, exception = self.rng.choice(_CRASHES[device.os])
        self._budget = -1
        props = {
            "app_version": device.app_version,
            "os": device.os,
            "os_version": device.os_version,
            "device_model": device.model,
            "reason": reason,
            "exception": exception,
            "screen": self._screen_name or "Launch",
            "fatal": True,
        }
        self._emit("App Crash", props, crashable=False)
        raise _SessionOver("crash")
