"""Two people chat in the demo at /demo, in Chromium: both ways, with typing,
receipts and presence; one drops off the network and comes back to exactly what
it missed; history loads while scrolling up; a phone-sized screen works; the
keyboard alone is enough; edits, reactions, replies, deletes, search and files;
a group of three.
Screenshots of each step go to target/browser-screenshots/."""
import re

from playwright.sync_api import expect

from conftest import post_as_backend


def test_two_people_chat_both_ways_with_typing_receipts_and_presence(tabs):
    # The only test that uses these two names (docs/img/demo.png is its last screenshot).
    alice, bob = tabs("alice", exact=True).sign_in(), tabs("bob", exact=True).sign_in()
    alice.start_chat(bob.user, first="Hi Bob!")
    alice.shot("01-alice-started-a-chat")

    # Bob's list learns of the chat live; he opens it and reads.
    bob.open_chat(alice.user)
    expect(bob.messages().filter(has_text="Hi Bob!")).to_have_count(1)
    expect(alice.page.locator("#chat-subtitle")).to_have_text("online")
    expect(alice.page.locator(".msg.mine .receipt")).to_have_text("Seen")

    # Bob types: Alice sees it, then his message.
    bob.page.get_by_label("Message", exact=True).press_sequentially("Hello Al")
    expect(alice.page.locator("#typing")).to_have_text(f"{bob.user} is typing…")
    alice.shot("02-alice-sees-bob-typing")
    bob.page.get_by_label("Message", exact=True).fill("")
    bob.send("Hello Alice, how are you?")
    expect(alice.messages().filter(has_text="Hello Alice, how are you?")).to_have_count(1)
    expect(alice.page.locator("#typing")).to_have_text("")

    # And back: Alice answers, Bob has the chat open, so Alice's answer is seen.
    alice.send("Great, thanks!")
    expect(bob.messages().filter(has_text="Great, thanks!")).to_have_count(1)
    expect(alice.page.locator(f'.msg.mine [data-receipt] >> text="Seen"')).to_have_count(1)
    expect(bob.page.locator(".msg.mine .receipt")).to_have_text("Seen")
    assert alice.bodies() == ["Hi Bob!", "Hello Alice, how are you?", "Great, thanks!"]
    assert bob.bodies() == alice.bodies()
    alice.shot("03-alice-chat")
    bob.shot("03-bob-chat")


class Link:
    """Stands between a page and the node's WebSocket, and can cut it: the page's
    socket closes and new ones are refused until the link is back."""

    def __init__(self, tab):
        self.tab, self.down, self.open = tab, False, []
        tab.context.route_web_socket(re.compile(r"/ws(\?|$)"), self.route)

    def route(self, ws):
        if self.down:
            ws.close(code=1001, reason="offline")
            return
        self.open.append((ws, ws.connect_to_server()))

    def cut(self):
        self.down = True
        self.tab.context.set_offline(True)
        for ws, server in self.open:
            server.close()
            ws.close(code=1001, reason="offline")
        self.open.clear()

    def restore(self):
        self.down = False
        self.tab.context.set_offline(False)


def test_back_online_a_tab_shows_exactly_what_it_missed(tabs):
    alice = tabs("alice").sign_in()
    bob = tabs("bob")
    link = Link(bob)
    bob.sign_in()
    alice.start_chat(bob.user, first="Before the tunnel")
    bob.open_chat(alice.user)
    expect(bob.messages()).to_have_count(1)

    link.cut()
    expect(bob.page.locator("#status")).not_to_have_text("Online")
    expect(alice.page.locator("#chat-subtitle")).to_have_text("offline")
    missed = [f"While you were away {n}" for n in range(1, 7)]
    for text in missed:
        alice.send(text)
    bob.shot("04-bob-offline")
    assert bob.bodies() == ["Before the tunnel"], "nothing reaches an offline tab"

    link.restore()
    expect(bob.page.locator("#status")).to_have_text("Online")
    expect(bob.messages()).to_have_count(1 + len(missed))
    # Once each, in order, and nothing more arrives later.
    bob.page.wait_for_timeout(700)
    assert bob.bodies() == ["Before the tunnel", *missed]
    expect(alice.page.locator("#chat-subtitle")).to_have_text("online")
    bob.send("Back!")
    expect(alice.messages().filter(has_text="Back!")).to_have_count(1)
    bob.shot("05-bob-back-online")


def test_history_loads_while_scrolling_up(tabs):
    alice, bob = tabs("alice").sign_in(), tabs("bob").sign_in()
    chat = alice.start_chat(bob.user, first="The very first message")
    total = 1 + 130
    for n in range(2, total + 1):
        post_as_backend(chat, bob.user, f"Message number {n}")
    # A fresh load of the chat shows its newest page only.
    alice.page.reload()
    expect(alice.page.locator("#chat-title")).to_have_text(bob.user)
    expect(alice.messages().last).to_contain_text(f"Message number {total}")
    first_page = alice.messages().count()
    assert 0 < first_page < total, first_page

    box = alice.page.locator("#messages")
    for _ in range(10):
        if alice.page.locator("#history-status").inner_text() == "This is the start of the chat.":
            break
        box.evaluate("el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
        alice.page.wait_for_timeout(250)
    expect(alice.page.locator("#history-status")).to_have_text("This is the start of the chat.")
    expect(alice.messages()).to_have_count(total)
    bodies = alice.bodies()
    assert bodies[0] == "The very first message"
    assert bodies[1:] == [f"Message number {n}" for n in range(2, total + 1)]
    alice.shot("06-history-top")


def test_a_phone_sized_screen_shows_one_pane_at_a_time(tabs):
    bob = tabs("bob").sign_in()
    phone = tabs("alice", viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    phone.sign_in()
    phone.shot("07-phone-chats")
    expect(phone.page.locator("#conversation")).to_be_hidden()
    phone.start_chat(bob.user, first="Sent from my phone")
    expect(phone.page.locator("#sidebar")).to_be_hidden()
    expect(phone.page.get_by_role("button", name="Back to chats")).to_be_visible()
    bob.open_chat(phone.user)
    bob.send("Got it on my laptop")
    expect(phone.messages().filter(has_text="Got it on my laptop")).to_have_count(1)
    phone.send("Nice")
    width = phone.page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
    phone.shot("08-phone-chat")
    phone.page.get_by_role("button", name="Back to chats").click()
    expect(phone.page.locator("#sidebar")).to_be_visible()
    expect(phone.page.locator("#chat-list button").filter(has_text=bob.user)).to_be_visible()


def test_the_keyboard_alone_signs_in_opens_a_chat_and_sends(tabs):
    bob = tabs("bob").sign_in()
    alice = tabs("alice").open()
    keys = alice.page.keyboard
    expect(alice.page.locator("#signin-user")).to_be_focused()
    keys.type(alice.user)
    keys.press("Enter")
    expect(alice.page.locator("#status")).to_have_text("Online")
    bob.start_chat(alice.user, first="Can you answer without a mouse?")
    expect(alice.page.locator("#chat-list button")).to_have_count(1)

    # Tab from wherever the page put the focus to the chat, Enter opens it.
    for _ in range(12):
        if alice.page.evaluate("!!document.activeElement.closest('#chat-list')"):
            break
        keys.press("Tab")
    assert alice.page.evaluate("!!document.activeElement.closest('#chat-list')"), "Tab never reached the chat list"
    outline = alice.page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused chat shows no focus ring"
    keys.press("Enter")
    expect(alice.page.get_by_label("Message", exact=True)).to_be_focused()
    keys.type("Yes, only keys.")
    keys.press("Enter")
    expect(bob.messages().filter(has_text="Yes, only keys.")).to_have_count(1)
    alice.shot("09-keyboard-only")

    # Up in the empty box edits the last message; Enter saves it.
    keys.press("ArrowUp")
    expect(alice.page.locator("#composer-context")).to_be_visible()
    keys.press("Control+A")
    keys.type("Yes, keys only.")
    keys.press("Enter")
    expect(bob.messages().filter(has_text="Yes, keys only.")).to_contain_text("(edited)")


def test_reactions_replies_deletes_search_and_files(tabs):
    alice, bob = tabs("alice").sign_in(), tabs("bob").sign_in()
    alice.start_chat(bob.user, first="Pick a lunch place")
    bob.open_chat(alice.user)

    # Bob reacts to and answers Alice's message.
    message = bob.messages().filter(has_text="Pick a lunch place")
    message.hover()
    message.get_by_role("button", name="React 👍").click()
    expect(alice.messages().filter(has_text="Pick a lunch place").locator(".reaction")).to_have_text("👍 1")
    message.hover()
    message.get_by_role("button", name="Reply").click()
    expect(bob.page.locator("#composer-context")).to_contain_text("Replying to")
    bob.send("The noodle bar")
    expect(alice.messages().filter(has_text="The noodle bar").locator(".quote")).to_contain_text("Pick a lunch place")

    # Alice deletes a message: Bob's copy becomes a tombstone.
    alice.send("Wrong chat, sorry")
    expect(bob.messages().filter(has_text="Wrong chat, sorry")).to_have_count(1)
    alice.page.once("dialog", lambda dialog: dialog.accept())
    mine = alice.messages().filter(has_text="Wrong chat, sorry")
    mine.hover()
    mine.get_by_role("button", name="Delete").click()
    expect(bob.page.locator(".msg.deleted")).to_have_text(re.compile("This message was deleted"))
    # The receipt moves to Alice's newest message still there, which Bob has read.
    expect(alice.messages().filter(has_text="Pick a lunch place").locator(".receipt")).to_have_text("Seen")

    # Search finds the answer (the index is a moment behind the send).
    for _ in range(20):
        alice.page.get_by_label("Search messages", exact=True).fill("noodle")
        alice.page.get_by_label("Search messages", exact=True).press("Enter")
        hit = alice.page.locator("#search-list .search-hit")
        try:
            expect(hit).to_have_count(1, timeout=500)
            break
        except AssertionError:
            continue
    expect(alice.page.locator("#search-list mark")).to_have_text("noodle")
    alice.shot("10-search")

    # A file: Alice attaches an image, Bob sees it.
    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f80f0000010101005a4d6e1b0000000049454e44ae426082"
    )
    alice.page.locator("#composer-file").set_input_files(
        files=[{"name": "dot.png", "mimeType": "image/png", "buffer": png}]
    )
    expect(alice.page.locator("#composer-files")).to_contain_text("dot.png")
    alice.page.get_by_label("Message", exact=True).press("Enter")
    expect(bob.page.locator('.msg img[alt="dot.png"]')).to_have_count(1)
    bob.shot("11-reactions-replies-files")


def test_without_attachment_storage_files_are_refused_with_a_clear_message(tabs):
    alice, bob = tabs("alice"), tabs("bob").sign_in()

    # A node without attachment storage says so in the session (attachments: null).
    def no_attachments(route):
        response = route.fetch()
        body = response.json()
        body["attachments"] = None
        route.fulfill(response=response, json=body)

    alice.page.route("**/demo/api/session", no_attachments)
    alice.sign_in()
    alice.start_chat(bob.user)
    alice.page.locator("#composer-file").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}]
    )
    expect(alice.page.locator("#composer-error")).to_contain_text("no attachment storage")
    expect(alice.page.locator("#composer-files")).to_be_empty()


def test_a_group_of_three(tabs):
    alice, bob, carol = tabs("alice").sign_in(), tabs("bob").sign_in(), tabs("carol").sign_in()
    alice.start_chat(bob.user, carol.user, first="Welcome, both of you")
    expect(alice.page.locator("#chat-subtitle")).to_contain_text("3 members")
    for tab in (bob, carol):
        tab.open_chat(alice.user)
        expect(tab.messages().filter(has_text="Welcome, both of you")).to_have_count(1)
    carol.send("Hi all")
    expect(alice.messages().filter(has_text="Hi all")).to_have_count(1)
    expect(bob.messages().filter(has_text="Hi all")).to_contain_text(carol.user)
    expect(carol.page.locator(".msg.mine .receipt")).to_contain_text("Seen by")
