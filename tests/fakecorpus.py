"""The fake server's toy model, its corpus: a vocabulary of phrases and templates that make
plausible, mostly novel instructions (and some the filters must drop), and the sentences that
fill instances. Deterministic for a given `random.Random`; standard library only."""

from __future__ import annotations

import hashlib
import json
import random
import re


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


def target_task(prompt: str) -> str:
    tasks = re.findall(r"Task:\s*(.*)", prompt)
    return tasks[-1].strip() if tasks else prompt.strip()[-200:]


def labelled_pairs(prompt: str, rng: random.Random) -> list[tuple[str, str]]:
    """(input, class label) pairs for an output-first prompt: each label of the task, once or
    twice."""
    labels = random.Random(seed_of(target_task(prompt))).choice(V["labels"]).split(" or ")
    rng.shuffle(labels)
    picks = labels + [rng.choice(labels)] * rng.randint(0, 1)
    return [(sentence(rng), label.capitalize()) for label in picks]


def input_output_pairs(rng: random.Random) -> list[tuple[str, str]]:
    """(input, output) pairs for an input-first prompt."""
    return [(sentence(rng), f"{sentence(rng)} {sentence(rng)}") for _ in range(rng.randint(2, 3))]


_SENTENCES: tuple[str, ...] = (
    "My experience with {activity} was {adjective} overall.",
    "The workshop on {topic} for {audience} felt {adjective}.",
    "Our team spent the weekend {activity}, and it was {adjective}.",
    "Most {audience} find {topic} {adjective} at first.",
    "The article about {topic} says it will matter more in the next {period}.",
    "{role} told us that {topic} is {adjective}.",
)


def sentence(rng: random.Random) -> str:
    text = _fill(rng.choice(_SENTENCES), rng)
    return text[0].upper() + text[1:]
