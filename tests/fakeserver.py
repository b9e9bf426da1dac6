"""A fake OpenAI-compatible HTTP server for tests: real sockets, scripted faults, a toy model.

Standard library only. The real `openai` client talks to it over HTTP on 127.0.0.1, so the
tests exercise the same transport (httpx2), parsing and error mapping as production.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import random
import re
import select
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from fakebatch import FakeBatches, batch_route

Reply = Callable[[dict[str, Any]], str]

ALL_FAULTS: tuple[str, ...] = ("429", "500", "503", "hang", "drop", "malformed", "length")

_ERRORS: dict[str, tuple[int, str, str, str | None]] = {
    # fault -> (status, message, type, code), as the OpenAI API words them.
    "429": (
        429,
        "Rate limit reached for requests. Please try again later.",
        "rate_limit_exceeded",
        "rate_limit_exceeded",
    ),
    "500": (
        500,
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    "503": (
        503,
        "The engine is currently overloaded, please try again later.",
        "server_error",
        None,
    ),
}


class Refuse(Exception):
    """Raised by a `reply` callable: the server answers this request with `status` (a 500:
    retried by the client), as for a fault, without printing a traceback."""

    def __init__(self, status: int = 500) -> None:
        super().__init__(f"refused with {status}")
        self.status = status


@dataclass
class Recorded:
    """One request as the server saw it, and what it did with it."""

    method: str
    path: str
    body: dict[str, Any] | None
    headers: dict[str, str]
    fault: str | None = None
    status: int | None = None  # None while in flight, and for a dropped connection
    in_flight: int = 0  # requests being served when this one arrived, itself included
    arrived: float = field(default_factory=time.monotonic)
    answered: float | None = None  # when the whole reply was written (time.monotonic)
    raw: bytes = field(default=b"", repr=False)  # the body as sent (a multipart upload)
    usage: dict[str, int] | None = None  # the tokens billed in the reply, if one was sent


# ---------------------------------------------------------------------------
# Token accounting, stop sequences and truncation (shared by all replies)


def estimate_tokens(text: str) -> int:
    """ceil(words * 1.3), in integers so the estimate is exact and deterministic."""
    return (len(text.split()) * 13 + 9) // 10


def cut_words(text: str, words: int) -> str:
    """The text up to the end of its `words`-th word, original spacing kept."""
    if words <= 0:
        return ""
    for i, match in enumerate(re.finditer(r"\S+", text), start=1):
        if i == words:
            return text[: match.end()]
    return text


def truncate_tokens(text: str, limit: int) -> str:
    """The longest word prefix whose token estimate is at most `limit`."""
    words = max(limit, 0) * 10 // 13
    while words > 0 and estimate_tokens(" ".join(["w"] * words)) > limit:
        words -= 1
    return cut_words(text, words)


def apply_stop(text: str, stop: str | Sequence[str] | None) -> tuple[str, bool]:
    """Cut at the first occurrence of any stop sequence; report whether one was found."""
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    cuts = [text.find(s) for s in stops if isinstance(s, str) and s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


def finish(text: str, body: dict[str, Any], fault: str | None) -> tuple[str, str]:
    """Apply stop, max_tokens and the "length" fault; return (text, finish_reason)."""
    text, _ = apply_stop(text, body.get("stop"))
    reason = "stop"
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(limit, int) and estimate_tokens(text) > limit:
        text, reason = truncate_tokens(text, limit), "length"
    if fault == "length":
        text, reason = cut_words(text, len(text.split()) // 2), "length"
    return text, reason


def prompt_text(body: dict[str, Any]) -> str:
    """The completions prompt (first one if a list), or the last user message of a chat."""
    if "messages" not in body:
        prompt = body.get("prompt", "")
        return str(prompt[0] if isinstance(prompt, list) and prompt else prompt or "")
    users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
    return _content_text(users[-1].get("content")) if users else ""


def _content_text(content: Any) -> str:
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


# ---------------------------------------------------------------------------
# Reply helpers usable as `reply=`


def fixed_reply(text: str) -> Reply:
    """Always answer `text`."""
    return lambda body: text


def sequence_reply(*texts: str) -> Reply:
    """Answer the texts in order of arrival, then keep repeating the last one."""
    if not texts:
        raise ValueError("sequence_reply needs at least one text")
    queue, lock = deque(texts), threading.Lock()

    def reply(body: dict[str, Any]) -> str:
        with lock:
            return queue.popleft() if len(queue) > 1 else queue[0]

    return reply


def numbered_reply(items: list[str]) -> Reply:
    """Continue the prompt's numbered list with exactly these items."""
    return lambda body: continue_numbering(body, items)


_NUMBERED = re.compile(r"^\s*(\d+)\s*[.)]", re.MULTILINE)
_OPEN_NUMBER = re.compile(r"(?:^|\n)\s*(\d+)\s*\.\s*$")


def next_number(prompt: str) -> tuple[int, bool]:
    """The number the model should write next, and whether the prompt already wrote it."""
    if m := _OPEN_NUMBER.search(prompt):
        return int(m.group(1)), True
    numbers = [int(n) for n in _NUMBERED.findall(prompt)]
    return (max(numbers) + 1 if numbers else 1), False


def continue_numbering(body: dict[str, Any], items: Sequence[str]) -> str:
    """Number `items` after the prompt's list: a continuation for completions, a list for chat."""
    start, written = next_number(prompt_text(body))
    lines = [f"{start + i}. {item}" for i, item in enumerate(items)]
    if written and "messages" not in body and lines:
        lines[0] = " " + items[0]  # the prompt ends with "9."; the model writes what follows
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# The toy model behind `default_reply`


def _words(spec: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in spec.split("|") if s.strip())


def _product(left: str, right: str) -> tuple[str, ...]:
    return tuple(f"{a} {b}" for a in _words(left) for b in _words(right))


# Vocabulary: slot name -> phrases. Composed slots (modifier x noun) keep the space large, so
# that instructions stay novel by ROUGE-L after thousands of requests.
V: dict[str, tuple[str, ...]] = {
    "topic": _words(
        "renewable energy|medieval castles|urban beekeeping|sourdough baking|quantum computing|"
        "personal budgeting|ocean tides|volcanic eruptions|ancient Rome|jazz improvisation|"
        "electric cars|remote work|coral reefs|the French Revolution|machine learning|"
        "public libraries|space tourism|chess openings|bird migration|cryptocurrency|"
        "the water cycle|mindful breathing|recycling programs|desert ecosystems|"
        "the printing press|vaccines|composting at home|solar eclipses|the stock market|"
        "tea ceremonies|minimalist living|the human immune system|container gardening|"
        "Arctic wildlife|street food|ancient Egyptian pyramids|wind turbines|sleep hygiene|"
        "online privacy|fermented foods|the Olympic Games|honeybee colonies|black holes|"
        "indoor houseplants|the Silk Road|plate tectonics|public speaking|credit scores|"
        "rainforest conservation|the Renaissance|3D printing|nuclear fusion|smart home devices|"
        "dinosaur fossils|volunteer firefighting|coffee roasting|the moon landing|"
        "mountain glaciers|small claims court|knitting patterns|weather forecasting|"
        "the Great Wall of China|open source software|food allergies|hot air balloons|"
        "rainwater harvesting|the Industrial Revolution|ballet training|cybersecurity basics|"
        "wildfire prevention|birdwatching|tidal energy|the history of chocolate|local elections|"
        "antibiotic resistance|cave exploration|national parks|origami|the metric system|"
        "hydroponic farming|vintage cameras|language extinction|deep sea creatures|"
        "carbon footprints|the Byzantine Empire|sign language|stand-up comedy|"
        "autonomous vehicles|microplastics|ice hockey|genealogy research|urban heat islands|"
        "lunar calendars|bamboo construction|migraine headaches|tax deductions|the Viking age|"
        "seed saving|wolf reintroduction|food trucks|glassblowing|meteor showers|typewriters|"
        "wetland restoration|the Hubble telescope|coastal erosion|sea turtles|paper money"
    )
    + _product(
        "urban|ancient|modern|rural|coastal|traditional|digital|medieval|sustainable|alpine|"
        "tropical|nomadic|suburban|Japanese|Mexican|Nordic|West African|Victorian|amateur|"
        "competitive|island|desert|Andean|Mediterranean|Korean",
        "gardening|architecture|festivals|transportation|cooking|education|markets|folklore|"
        "fashion|medicine|sports|farming|housing|storytelling|textiles|trade|healthcare|dance|"
        "pottery|navigation|bridges|games|forestry|fishing|tourism|banking|journalism|theater|"
        "water management|beekeeping",
    ),
    "audience": _words(
        "a ten-year-old child|high school students|new employees at a bank|a busy single parent|"
        "first-time home buyers|small business owners|junior software developers|"
        "a tourist with one free afternoon|college freshmen|a group of amateur hikers|"
        "elderly neighbors|a skeptical journalist|middle school science teachers|"
        "farmers in a dry region|a shy teenager|volunteers at an animal shelter|"
        "city council members|online shoppers|exchange students from Brazil|"
        "hospital administrators|complete beginners|a book club|parents of toddlers|"
        "museum visitors|startup founders|amateur astronomers|a local rowing team|"
        "people who hate mornings|graduate researchers|a kindergarten class|apartment renters"
    )
    + _product(
        "retired|busy|nervous|curious|young|experienced|newly hired|part-time|rural|"
        "international|skeptical|teenage|overworked|first-time|bilingual|aspiring",
        "teachers|nurses|engineers|parents|gardeners|students|truck drivers|painters|"
        "accountants|farmers|shop owners|volunteers|athletes|travelers|librarians|cooks|"
        "coaches|programmers|voters|readers|pilots|photographers",
    ),
    "count": _words("two|three|four|five|six|seven|eight|ten"),
    "things": _words(
        "tips|questions|surprising facts|arguments|common mistakes|creative ideas|analogies|"
        "discussion prompts|trivia questions|safety rules|catchy slogans|book titles|"
        "interview questions|popular myths|key terms|warning signs|fun activities|"
        "practical exercises|open research questions|memorable quotes|ethical concerns|"
        "budget-friendly ideas|beginner projects|historical milestones|quiz questions|"
        "conversation starters|rules of thumb|misconceptions|hidden costs|success stories|"
        "career paths|daily habits|essay prompts|field trip ideas|headline ideas"
    ),
    "constraint": _words(
        "in under sixty words|using plain everyday language|in a formal tone|"
        "as a numbered list|giving one example for each point|without technical jargon|"
        "in the voice of a sports commentator|keeping the tone upbeat|"
        "ranked from most to least important|in exactly three sentences|"
        "suitable for a company newsletter|avoiding clichés|with a touch of humor|"
        "that could fit on a postcard|for a radio announcement|in the second person|"
        "citing at least one historical event|with a surprising twist at the end|"
        "mentioning a common counterargument|in fewer than five bullet points|"
        "so that a grandparent could follow it|while staying strictly neutral|"
        "ending with a question for the reader|like a friendly pirate|in rhyming couplets|"
        "as a short dialogue|using only words of one syllable where possible"
    ),
    "tail": (
        "",
        " {constraint}",
        " for {audience}",
        " for {audience} {constraint}",
        ", focusing on {aspect}",
        " and relate it to {topic}",
        " using an example from {topic}",
        " as {role} would",
        " so that {audience} can follow it",
        " in a {tone} tone",
        " with a {tone} voice",
        ", keeping {audience} in mind",
        ", then suggest {count} {things} to explore next",
    ),
    "format": _words(
        "short poem|haiku|limerick|tweet|news headline|product description|"
        "short story opening|dialogue between two friends|motivational speech|"
        "blog post outline|riddle|thank-you note|job advertisement|movie synopsis|"
        "travel itinerary|diary entry|song chorus|children's bedtime story|press release|"
        "fortune cookie message|museum placard|podcast introduction|letter to the editor|"
        "restaurant review|wedding toast|sonnet|fable with a moral|weather report parody|"
        "recipe card|crossword clue list|campaign speech|comic strip script|eulogy"
    ),
    "activity": _words(
        "learning a new language|training for a marathon|starting a vegetable garden|"
        "moving to a new city|adopting a rescue dog|preparing for a job interview|"
        "writing a first novel|saving for retirement|hosting a dinner party|"
        "learning to swim as an adult|building a birdhouse|planning a small wedding|"
        "switching careers at forty|studying for final exams|running a neighborhood book club|"
        "reducing household food waste|commuting by bicycle|learning to play chess|"
        "volunteering at a food bank|renovating an old kitchen|traveling alone abroad|"
        "starting a podcast|keeping a daily journal|cooking meals for the week ahead|"
        "teaching a teenager to drive|camping in the mountains|quitting sugary drinks|"
        "organizing a charity run|learning basic car repair|raising backyard chickens|"
        "working from a coffee shop|taking a gap year|mentoring a new colleague|"
        "decluttering a garage|brewing kombucha|joining a community choir|fostering kittens|"
        "climbing an indoor wall|negotiating a salary|sewing your own clothes|"
        "learning to juggle|painting a bedroom|selling crafts online|baking bread every week|"
        "living without a car|writing letters by hand|growing tomatoes on a balcony|"
        "running for student council|repairing old furniture|coaching a youth team|"
        "learning to ice skate|caring for an aging parent|building a budget spreadsheet|"
        "hiking a long-distance trail|starting a small bakery|waking up at five every day"
    ),
    "doc": _words(
        "paragraph|sentence|email|product review|news article|poem|recipe|customer complaint|"
        "job description|restaurant menu|movie review|essay introduction|speech|cover letter|"
        "text message|meeting summary|travel brochure|user manual section|social media post|"
        "apology letter|lab report abstract|real estate listing|sports report|press statement"
    ),
    "tone": _words(
        "formal|friendly|persuasive|humorous|concise|optimistic|professional|empathetic|"
        "dramatic|neutral|enthusiastic|polite|confident|poetic|playful|urgent|reassuring"
    ),
    "labels": _words(
        "positive or negative|fact or opinion|spam or not spam|formal or informal|"
        "true or false|a fruit or a vegetable|a mammal or a reptile|urgent or not urgent|"
        "sarcastic or sincere|a question or a statement|offensive or not offensive|"
        "relevant or irrelevant|easy or hard|renewable or non-renewable|"
        "healthy or unhealthy|safe or dangerous|ancient or modern|liquid or solid"
    ),
    "items": _words(
        "sentences|tweets|product reviews|animals|headlines|emails|statements|words|"
        "movie titles|news stories|customer messages|survey answers|foods|sports|inventions|"
        "job titles|hotel reviews|book blurbs|city names|household objects"
    ),
    "recipient": _words(
        "a landlord|a coworker|your manager|a neighbor|a loyal customer|a former teacher|"
        "the city council|a hotel manager|a furniture supplier|an old friend|a dentist office|"
        "the school principal|a moving company|a team of volunteers|an airline|a local newspaper"
    ),
    "situation": _words(
        "a delayed shipment|a noisy party next door|a missed deadline|a broken heater|"
        "an upcoming team offsite|a change in office hours|a billing error|a cancelled flight|"
        "a lost package|a schedule conflict|a leaking roof|a price increase|"
        "a surprise birthday celebration|a canceled order|a parking dispute|a new recycling rule"
    ),
    "aspect": _words(
        "cost|environmental impact|long-term risks|ease of use|popularity|safety|"
        "historical importance|effect on daily life|job creation|accessibility|"
        "energy use|public perception|reliability|cultural influence"
    ),
    "period": _words("five years|decade|twenty years|century|fifty years"),
    "venture": _words(
        "a small cafe|a mobile app|a podcast|a youth soccer club|an independent bookstore|"
        "a bakery|a nonprofit|a hiking club|a tutoring service|an online newsletter|"
        "a repair shop|a community garden|a summer camp|a food truck|a bicycle rental"
    ),
    "media": _words(
        "books|podcasts|documentaries|board games|websites|online courses|museums|"
        "magazines|newsletters|novels"
    ),
    "role": _words(
        "a museum guide|a park ranger|a personal trainer|a pastry chef|a librarian|"
        "a historian|an astronaut|a detective|a lighthouse keeper|a marine biologist|"
        "a flight attendant|a beekeeper|a firefighter|a tailor|a zookeeper|a city planner|"
        "a ship captain|a school nurse|a wedding photographer|a mountain guide|a court reporter|"
        "a radio host|a train conductor|a florist|a veterinarian|a street vendor"
    ),
    "entities": _words(
        "dates|people's names|city names|company names|numbers|adjectives|verbs|"
        "prices|country names|time expressions"
    ),
    "object": _words(
        "an old umbrella|empty glass jars|a broken bicycle|leftover rice|a cardboard box|"
        "used coffee grounds|a wooden ladder|old newspapers|a single sock|wine corks|"
        "plastic bottle caps|a torn pair of jeans|an unused bathtub|a pile of autumn leaves|"
        "a rusty wheelbarrow|old vinyl records|a cracked teapot|a stack of old magazines"
    ),
    "order": _words(
        "oldest to newest|smallest to largest|cheapest to most expensive|"
        "most to least popular|easiest to hardest|shortest to longest|north to south"
    ),
    "life": _words(
        "mental health|sleep|finances|social life|daily routine|sense of purpose|"
        "relationships|career|diet|weekly schedule"
    ),
    "adjective": _words(
        "surprisingly calm|rather disappointing|genuinely helpful|a bit confusing|"
        "absolutely wonderful|too expensive|quite relaxing|unexpectedly loud|well organized|"
        "painfully slow|refreshingly honest|completely overbooked"
    ),
}

# [a|b] picks one alternative, {slot} one phrase of V[slot] (distinct within an instruction;
# {topic2} is a second topic). Few fixed words per template keeps ROUGE-L between two fills low.
TEMPLATES: tuple[str, ...] = (
    "[Give|List|Share|Offer] {count} {things} [about|on|related to] {topic}{tail}.",
    "[Explain|Describe|Introduce|Break down] {topic} [for|to] {audience}{tail}.",
    "[Write|Compose|Create] a {format} [about|inspired by|celebrating] {topic}{tail}.",
    "[Compare|Contrast] {topic} [and|with] {topic2} [in terms of|regarding] {aspect}{tail}.",
    "[Suggest|Propose|Recommend] {count} [ways|strategies|tricks] to make {activity} "
    "[easier|less stressful|more fun|cheaper]{tail}.",
    "[Explain|Describe|List] the [biggest|most common|hidden|early] [challenges|obstacles|"
    "difficulties|risks] of {activity}{tail}.",
    "[Summarize|Recount|Sketch|Trace] the [history|origins|rise|evolution] of {topic} in "
    "{count} [sentences|paragraphs|bullet points|steps]{tail}.",
    "[List|Name|Give] {count} {things} [someone|a beginner|a newcomer|every parent] should know "
    "[before|about] {activity}.",
    "[Create|Build|Design|Draft] a [weekly|monthly|daily|two-week] [plan|schedule|routine|"
    "checklist] for {activity}{tail}.",
    "[Weigh|List|Discuss|Explain] the [pros and cons|benefits and drawbacks|costs and rewards] "
    "of {activity}{tail}.",
    "Classify [these|the following|each of the following] {items} [about|related to] {topic} "
    "as {labels}{tail}.",
    "[Decide|Determine|Judge] whether [these|the following] {items} [about|on] {topic} [are|"
    "seem] {labels}{tail}.",
    "[Rewrite|Revise|Edit|Rephrase] [the following|this] {doc} about {topic} [so it sounds|"
    "to sound|to read as] more {tone}.",
    "[Draft|Write|Compose] a {tone} [message|note|email|letter] to {recipient} "
    "[about|regarding|concerning] {situation}{tail}.",
    "[Propose|Suggest|Invent] a [name|logo idea|mascot] for {venture} [focused on|built around|"
    "dedicated to] {topic}{tail}.",
    "[Share|Tell me|Give] a [surprising|little-known|fun|strange] [fact|story|anecdote] about "
    "{topic}{tail}.",
    "How would you [persuade|convince|encourage|motivate] {audience} to [try|start|consider|"
    "give up] {activity}{tail}?",
    "[Generate|Prepare|Write] {count} {things} for a [classroom debate|panel discussion|"
    "podcast episode|town hall meeting|team workshop] on {topic}.",
    "[Estimate|Guess|Work out] how [long|much money] {activity} [takes|requires|might need]{tail}.",
    "[Predict|Forecast|Speculate about] how {topic} [might|could|will] [change|evolve|develop] "
    "over the next {period}{tail}.",
    "[Extract|Find|List|Pull out] [all|every one of the] {entities} [mentioned|named] in "
    "[the following|this] {doc} about {topic}{tail}.",
    "[Turn|Convert|Transform|Adapt] [the following|this] {doc} about {topic} into a "
    "{format}{tail}.",
    "[Argue for|Argue against|Make the case for|Make the case against] {activity} as a "
    "[hobby|habit|goal|weekend project]{tail}.",
    "[Recommend|Suggest|List] {count} {media} about {topic}{tail}.",
    "[Design|Propose|Describe|Plan] a [simple|cheap|safe|quick] [experiment|demonstration|"
    "activity] [that shows|to teach|to explain] how {topic} works{tail}.",
    "Imagine you are {role} [who loves|studying|writing about] {topic}. [Describe|Narrate|"
    "Recall] [a typical|your busiest|an unusual|a memorable] [day|morning|week|shift]{tail}.",
    "[Pretend to be|Act as|Play the role of] {role} [answering|fielding|responding to] "
    "[questions|complaints|requests] about {topic} from {audience}.",
    "[Identify|Find|Point out|Summarize] the [main|central|weakest|strongest] [argument|claim|"
    "idea|point] [in|of] [the following|this] {doc} about {topic}{tail}.",
    "[Correct|Fix] [any|all|the] [grammar|spelling|punctuation] mistakes in [the following|"
    "this] {doc} about {topic}{tail}.",
    "[Outline|Plan|Sketch] a [short|45-minute|one-hour|hands-on] [lesson|workshop|seminar] on "
    "{topic}{tail}.",
    "[Brainstorm|List|Suggest] {count} [creative|unusual|practical|surprising] uses for "
    "{object}[ in a small apartment| at a school fair| during a camping trip|]{tail}.",
    "[Explain|Show|Describe] the difference between {topic} and {topic2} [using|with] "
    "[an everyday analogy|a simple example|a short story|a sports metaphor]{tail}.",
    "[Give|Write|Provide] step-by-step [instructions|guidance|directions] for {activity}{tail}.",
    "[Tell me|Decide|Check] whether [this|the following|a given] [statement|claim|rumor|"
    "headline] about {topic} is [true or false|accurate|misleading|exaggerated]{tail}.",
    "[Rate|Score|Grade|Evaluate] [the following|this] {doc} about {topic}[ on a scale from one "
    "to ten| out of five| from poor to excellent|]{tail}.",
    "[Come up with|Invent|Suggest|Write] a [catchy|memorable|short|witty] [slogan|motto|"
    "tagline] for {venture} [that mentions|inspired by|about] {topic}{tail}.",
    "Answer [a|one] [common|tricky|basic|frequently asked] question about {topic}{tail}.",
    "[Plan|Organize|Suggest] a [one-day|weekend|three-day|budget|family] [trip|tour|outing|"
    "itinerary] for {audience} [interested in|who care about|curious about] {topic}.",
    "[Write|Draft|Compose] a [short|two-paragraph|playful|heartfelt] [biography|profile|"
    "introduction] of {role} [who loves|obsessed with|known for studying] {topic}{tail}.",
    "[Describe|Explain|Discuss] how {activity} [could affect|might change|can improve] "
    "[someone's|a person's|a family's] {life}{tail}.",
    "[Sort|Order|Rank] [the following|these] {items} [about|related to] {topic} from {order}"
    "{tail}.",
    "[Convince|Persuade|Remind] {recipient} that {topic} [deserves|needs] more "
    "[attention|funding|public support]{tail}.",
    "[Invent|Imagine|Design] a [holiday|festival|annual tradition|local celebration] "
    "[celebrating|honoring|built around] {topic}{tail}.",
    "[Anticipate|Predict|List] the [questions|concerns|objections|doubts] {audience} "
    "[might raise|could have|often voice] about {topic}{tail}.",
    "[Write|Draft] a {format} [from the perspective of|in the voice of] {role} "
    "[about|reflecting on] {activity}.",
)

# Instructions the pipeline's filters must drop: keywords, "Write a program", too short.
BAD_TEMPLATES: tuple[str, ...] = (
    "Describe the image below, which shows {topic}.",
    "Draw a picture that explains {topic} to {audience}.",
    "Plot a graph of how {topic} changed over the last {period}.",
    "Go to a website about {topic} and summarize what you find.",
    "Open the attached file about {topic} and list its main points.",
    "Write a program that quizzes {audience} about {topic}.",
    "Write a program to sort {items} from {order}.",
    "Explain {topic}.",
    "Name {count} {media}.",
)
BAD_RATE = 0.1

_ALTERNATIVES = re.compile(r"\[([^\[\]]*)\]")
_SLOT = re.compile(r"\{([a-z]+)\d?\}")


def make_instruction(rng: random.Random, bad_rate: float = BAD_RATE) -> str:
    """One plausible instruction; with probability `bad_rate`, one the filters should drop."""
    if rng.random() < bad_rate:
        return _fill(rng.choice(BAD_TEMPLATES), rng)
    while True:
        text = _fill(rng.choice(TEMPLATES), rng)
        if 8 <= len(text.split()) <= 25:
            return text


def _fill(template: str, rng: random.Random) -> str:
    """Resolve [a|b] alternatives, then {slot}s (distinct phrases per slot, recursively)."""
    text = _ALTERNATIVES.sub(lambda m: rng.choice(m.group(1).split("|")), template)
    used: set[str] = set()

    def pick(m: re.Match[str]) -> str:
        phrase = rng.choice([p for p in V[m.group(1)] if p not in used])
        used.add(phrase)
        return phrase

    while _SLOT.search(text):
        text = _SLOT.sub(pick, text, count=1)
    return _AN.sub(r"\1n ", text)


_AN = re.compile(r"\b([Aa]) (?=[aeioAEIO](?!ne)|u(?:rg|nu|nex|pb))")


def seed_of(*parts: object) -> int:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def default_reply(body: dict[str, Any], salt: int = 0) -> str:
    """A stand-in model for the Self-Instruct prompts; `salt` varies repeated requests."""
    prompt = prompt_text(body)
    chat = "messages" in body
    rng = random.Random(seed_of(body, salt))
    if "Is it classification?" in prompt:
        return classification_answer(prompt, chat=chat)
    start, written = next_number(prompt)
    if written:
        return _instructions(body, start, rng)
    if "Class label:" in prompt:
        return _continuation(prompt, _labelled_instances(prompt, rng), chat=chat)
    if "Input:" in prompt and "Output:" in prompt:
        return _continuation(prompt, _input_output_instances(rng), chat=chat)
    if _NUMBERED.search(prompt):
        return _instructions(body, start, rng)
    return f"{_sentence(rng)} {_sentence(rng)}"


def _instructions(body: dict[str, Any], start: int, rng: random.Random) -> str:
    """New numbered instructions from `start` up to 16 (or 7 of them past 16)."""
    last = max(16, start + 6)
    return continue_numbering(body, [make_instruction(rng) for _ in range(start, last + 1)])


def _target_task(prompt: str) -> str:
    tasks = re.findall(r"Task:\s*(.*)", prompt)
    return tasks[-1].strip() if tasks else prompt.strip()[-200:]


def classification_answer(prompt: str, *, chat: bool = False) -> str:
    """The answer " Yes" for about 30% of target tasks, " No" otherwise; fixed per task."""
    tail = prompt.rsplit("Is it classification?", 1)[0]
    answer = "Yes" if seed_of(_target_task(tail)) % 10 < 3 else "No"
    return answer if chat else " " + answer


def labelled_pairs(prompt: str, rng: random.Random) -> list[tuple[str, str]]:
    """(input, class label) pairs for an output-first prompt: each label of the task, once or
    twice."""
    labels = random.Random(seed_of(_target_task(prompt))).choice(V["labels"]).split(" or ")
    rng.shuffle(labels)
    picks = labels + [rng.choice(labels)] * rng.randint(0, 1)
    return [(_sentence(rng), label.capitalize()) for label in picks]


def input_output_pairs(rng: random.Random) -> list[tuple[str, str]]:
    """(input, output) pairs for an input-first prompt."""
    return [
        (_sentence(rng), f"{_sentence(rng)} {_sentence(rng)}") for _ in range(rng.randint(2, 3))
    ]


def _labelled_instances(prompt: str, rng: random.Random) -> str:
    pairs = labelled_pairs(prompt, rng)
    return "".join(f"Class label: {label}\nInput: {given}\n\n" for given, label in pairs)


def _input_output_instances(rng: random.Random) -> str:
    return "".join(
        f"Example {i}\nInput: {given}\nOutput: {output}\n\n"
        for i, (given, output) in enumerate(input_output_pairs(rng), 1)
    )


def _continuation(prompt: str, reply: str, *, chat: bool) -> str:
    """If a completions prompt already wrote the reply's first words, write only the rest."""
    tail = prompt.rstrip().rsplit("\n", 1)[-1].strip()
    if not chat and tail and reply.startswith(tail):
        return reply[len(tail) :]
    return reply


_SENTENCES: tuple[str, ...] = (
    "My experience with {activity} was {adjective} overall.",
    "The workshop on {topic} for {audience} felt {adjective}.",
    "Our team spent the weekend {activity}, and it was {adjective}.",
    "Most {audience} find {topic} {adjective} at first.",
    "The article about {topic} says it will matter more in the next {period}.",
    "{role} told us that {topic} is {adjective}.",
)


def _sentence(rng: random.Random) -> str:
    text = _fill(rng.choice(_SENTENCES), rng)
    return text[0].upper() + text[1:]


# ---------------------------------------------------------------------------
# The server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOpenAI

    request_queue_size = 1024  # the listen backlog: 128 clients connecting at once must all fit

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        """Wake every handler blocked on a keep-alive connection so its thread ends."""
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # clients hanging up are not errors
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    disable_nagle_algorithm = True  # else small replies wait ~40 ms for a delayed ACK
    wbufsize = 1 << 16  # headers and body leave in one write
    server: _Server

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.fake._serve(self, raw, headers)

    def send(self, record: Recorded, status: int, payload: Any, extra: dict[str, str]) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        record.status = status
        if isinstance(payload, dict) and isinstance(payload.get("usage"), dict):
            record.usage = payload["usage"]
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", f"req_fake{id(record):x}")
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            record.answered = time.monotonic()
        except OSError:  # the client gave up (timeout) or the server is stopping
            self.close_connection = True

    def peer_closed(self) -> bool:
        """True once the client hung up (a timed-out client closes its connection)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _error(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


class FakeOpenAI:
    """An OpenAI-compatible server on 127.0.0.1 with scripted or random faults."""

    def __init__(
        self,
        reply: Reply | None = None,
        *,
        api_key: str | None = "sk-test",
        latency: float = 0.0,
        fault_rate: float = 0.0,
        fault_kinds: Sequence[str] = ALL_FAULTS,
        seed: int = 0,
        hang_seconds: float = 3.0,
        retry_after: float = 0.05,
        models: Sequence[str] | None = None,
        rate_limit: float | None = None,
        burst: int = 1,
        slots: int | None = None,
        token_latency: float = 0.0,
    ) -> None:
        """`rate_limit`: a token bucket of `burst` requests refilled at this many per second;
        a request that finds it empty gets a 429 with Retry-After (like a real rate limit).
        `slots`: at most this many requests are worked on at once (`latency` each) and the rest
        wait their turn, as in vLLM's batch: latency grows with load and no 429 ever comes.
        `token_latency`: seconds more per token of the request's max_tokens, as a real model
        takes longer for longer answers (an 8-token classification against a 1024-token list)."""
        unknown = set(fault_kinds) - set(ALL_FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; choose from {ALL_FAULTS}")
        self.reply = reply or self._default_reply
        self.api_key = api_key
        self.latency = latency
        self.fault_rate = fault_rate
        self.fault_kinds = tuple(fault_kinds)
        self.hang_seconds = hang_seconds
        self.retry_after = retry_after
        self.models = list(models) if models is not None else None
        self.rate_limit, self.burst = rate_limit, burst
        self._slots = threading.Semaphore(slots) if slots is not None else None
        self.token_latency = token_latency
        self._tokens, self._refilled = float(burst), time.monotonic()
        self.in_flight = 0
        self.requests: list[Recorded] = []
        self.base_url = ""
        self._rng = random.Random(seed)
        self._script: deque[str | None] = deque()
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.files_batches = FakeBatches(self)  # the Files and Batches endpoints

    # -- lifecycle

    def start(self) -> FakeOpenAI:
        self._server = _Server(self)
        port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop at once: sleeping handlers wake up and drop their connections."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.close_all()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=1)
        self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- control and inspection

    def script(self, *faults: str | None) -> None:
        """Give the next requests these faults, in order (None: a normal reply)."""
        unknown = {f for f in faults if f is not None} - set(ALL_FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; choose from {ALL_FAULTS}")
        with self._lock:
            self._script.extend(faults)

    def completed(self) -> list[Recorded]:
        """Requests answered with a usable 200 reply: no fault, "length", or a "hang" whose
        client waited long enough to read it."""
        usable = (None, "length", "hang")
        return [r for r in self.requests if r.status == 200 and r.fault in usable]

    def finish_batches(self, **how: Any) -> list[str]:
        """Finish the open batches (see FakeBatches.finish: order, fail_ids, expire, fail)."""
        return self.files_batches.finish(**how)

    def bodies(self, path: str | None = None) -> list[dict[str, Any]]:
        """JSON bodies of the requests received (optionally only those to `path`)."""
        return [r.body for r in self.requests if r.body is not None and path in (None, r.path)]

    # -- request handling

    def _default_reply(self, body: dict[str, Any]) -> str:
        return default_reply(body, salt=next(self._counter))

    def _pause(self, seconds: float) -> bool:
        """Sleep unless the server is stopping; True if it is."""
        return self._stopping.wait(seconds) if seconds > 0 else self._stopping.is_set()

    def _serve(self, handler: _Handler, raw: bytes, headers: dict[str, str]) -> None:
        path = handler.path.split("?", 1)[0]
        body = _json_object(raw)
        record = Recorded(handler.command, path, body, headers, raw=raw)
        problem = self._check(handler.command, path, body, headers)
        with self._lock:
            self.requests.append(record)
            self.in_flight += 1
            record.in_flight = self.in_flight
            if problem is None:
                record.fault = "429" if self._rate_limited() else self._draw_fault()
        try:
            if self._work(self.latency + self.token_latency * _max_tokens(body)):
                return handler.drop()
            if problem is not None:
                return handler.send(record, problem[0], problem[1], {})
            self._respond(handler, record)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _work(self, seconds: float) -> bool:
        """Wait for a slot (if slots are limited), then `seconds`; True if the server stops."""
        if self._slots is None:
            return self._pause(seconds)
        while not self._slots.acquire(timeout=0.05):
            if self._stopping.is_set():
                return True
        try:
            return self._pause(seconds)
        finally:
            self._slots.release()

    def _rate_limited(self) -> bool:
        """Take a token from the bucket (caller holds the lock); True when it is empty."""
        if self.rate_limit is None:
            return False
        now = time.monotonic()
        self._tokens = min(
            float(self.burst), self._tokens + (now - self._refilled) * self.rate_limit
        )
        self._refilled = now
        if self._tokens < 1.0:
            return True
        self._tokens -= 1.0
        return False

    def _draw_fault(self) -> str | None:
        if self._script:
            return self._script.popleft()
        if self.fault_rate > 0 and self._rng.random() < self.fault_rate:
            return self._rng.choice(self.fault_kinds)
        return None

    def _check(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> tuple[int, dict[str, Any]] | None:
        """The error a real server would give before doing any work, if any."""
        if (method, path) not in _ROUTES and batch_route(method, path) is None:
            msg = f"Invalid URL ({method} {path})"
            return 404, _error(msg, "invalid_request_error", None)
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            msg = (
                "Incorrect API key provided. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
            return 401, _error(msg, "invalid_request_error", "invalid_api_key")
        if method == "GET" or batch_route(method, path) is not None:
            return None  # the Files and Batches endpoints check their own input
        if body is None:
            msg = "We could not parse the JSON body of your request."
            return 400, _error(msg, "invalid_request_error", None)
        return _validate(path, body, self.models)

    def _respond(self, handler: _Handler, record: Recorded) -> None:
        fault, body = record.fault, record.body or {}
        if fault == "drop":
            return handler.drop()
        if fault == "hang" and (self._pause(self.hang_seconds) or handler.peer_closed()):
            return handler.drop()  # nobody is left to read the late reply
        if fault in _ERRORS:
            status, message, type_, code = _ERRORS[fault]
            extra = {}
            if fault == "429":
                extra = {
                    "Retry-After": f"{self.retry_after:g}",
                    "retry-after-ms": str(round(self.retry_after * 1000)),
                }
            return handler.send(record, status, _error(message, type_, code), extra)
        if fault == "malformed":
            return handler.send(record, 200, b'{"id": "chatcmpl-broken", "choices": [{"ind', {})
        if (record.method, record.path) not in _ROUTES:
            status, payload = self.files_batches.serve(
                record.method, record.path, record.raw, record.headers
            )
            return handler.send(record, status, payload, {})
        try:
            payload = _ROUTES[(record.method, record.path)](self, body, fault)
        except Refuse as refused:
            error = _error("fake server: refused by the test", "server_error", None)
            return handler.send(record, refused.status, error, {})
        except Exception as exc:  # a broken reply= callable: say so instead of hanging up
            traceback.print_exc()
            message = f"fake server: the reply callable raised {exc!r}"
            return handler.send(record, 500, _error(message, "server_error", None), {})
        handler.send(record, 200, payload, {})

    # -- the three endpoints

    def _chat(self, body: dict[str, Any], fault: str | None) -> dict[str, Any]:
        choices: list[dict[str, Any]] = []
        used = 0
        for i in range(_n(body)):
            text, reason = finish(self.reply(body), body, fault)
            used += estimate_tokens(text)
            message: dict[str, Any] = {
                "role": "assistant",
                "content": text,
                "refusal": None,
                "annotations": [],
            }
            choices.append(
                {"index": i, "message": message, "logprobs": None, "finish_reason": reason}
            )
        messages = body.get("messages") or []
        prompt = " ".join(_content_text(m.get("content")) for m in messages)
        return self._envelope("chatcmpl", "chat.completion", body, choices, prompt, used)

    def _completions(self, body: dict[str, Any], fault: str | None) -> dict[str, Any]:
        prompt = body.get("prompt", "")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        choices: list[dict[str, Any]] = []
        used = 0
        for p, _ in itertools.product(prompts, range(_n(body))):
            text, reason = finish(self.reply({**body, "prompt": p}), body, fault)
            used += estimate_tokens(text)
            choice = {
                "text": text,
                "index": len(choices),
                "logprobs": None,
                "finish_reason": reason,
            }
            choices.append(choice)
        kind = "text_completion"
        return self._envelope("cmpl", kind, body, choices, " ".join(prompts), used)

    def _list_models(self, body: dict[str, Any], fault: str | None) -> dict[str, Any]:
        names = self.models if self.models is not None else ["gpt-4o-mini", "davinci-002"]
        data = [
            {"id": n, "object": "model", "created": 1700000000, "owned_by": "fakeserver"}
            for n in names
        ]
        return {"object": "list", "data": data}

    def _envelope(
        self,
        prefix: str,
        kind: str,
        body: dict[str, Any],
        choices: list[dict[str, Any]],
        prompt: str,
        used: int,
    ) -> dict[str, Any]:
        number = next(self._ids)
        prompt_tokens = estimate_tokens(prompt)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": used,
            "total_tokens": prompt_tokens + used,
        }
        return {
            "id": f"{prefix}-fake{number:06d}",
            "object": kind,
            "created": 1700000000 + number,
            "model": body["model"],
            "system_fingerprint": "fp_fake",
            "choices": choices,
            "usage": usage,
        }


_Endpoint = Callable[[FakeOpenAI, dict[str, Any], "str | None"], dict[str, Any]]
_ROUTES: dict[tuple[str, str], _Endpoint] = {
    ("POST", "/v1/chat/completions"): FakeOpenAI._chat,
    ("POST", "/v1/completions"): FakeOpenAI._completions,
    ("GET", "/v1/models"): FakeOpenAI._list_models,
}


def _max_tokens(body: dict[str, Any] | None) -> int:
    value = (body or {}).get("max_tokens") or (body or {}).get("max_completion_tokens")
    return value if isinstance(value, int) and value > 0 else 0


def _n(body: dict[str, Any]) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and n > 0 else 1


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _validate(
    path: str, body: dict[str, Any], models: Sequence[str] | None
) -> tuple[int, dict[str, Any]] | None:
    def bad(message: str, status: int = 400, code: str | None = None) -> tuple[int, dict[str, Any]]:
        return status, _error(message, "invalid_request_error", code)

    model = body.get("model")
    if not isinstance(model, str) or not model:
        return bad("you must provide a model parameter")
    if models is not None and model not in models:
        msg = f"The model `{model}` does not exist or you do not have access to it."
        return bad(msg, 404, "model_not_found")
    if body.get("stream"):
        return bad("stream=true is not supported by the fake server")
    if path.endswith("chat/completions"):
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return bad("'messages' must be a non-empty array")
        return None
    prompt = body.get("prompt")
    if not (isinstance(prompt, str) or _all_str(prompt)):
        return bad("'prompt' must be a string or an array of strings")
    return None


def _all_str(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def iter_items(text: str) -> Iterable[tuple[int, str]]:
    """(number, text) of each numbered line, for checking replies in tests."""
    for line in text.splitlines():
        if m := re.match(r"\s*(\d+)\s*\.\s*(.*)", line):
            yield int(m.group(1)), m.group(2).strip()
