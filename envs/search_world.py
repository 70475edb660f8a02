"""A seeded fictional world for ``search_qa``: documents, and questions only they answer.

Owns the world (invented people, cities, countries and organisations, each with attributes
and relations), its corpus (one document per entity, in Search-R1's ``{"id", "contents"}``
rows) and its questions. Every name is made from syllables by a seeded generator, so no
model has seen the facts: a question is answerable only by searching.

Questions:

- single hop (the subject's own document answers it): where a person was born, their birth
  year, their employer; a city's country; an organisation's founder and headquarters; a
  country's capital;
- two hops (the first document names an entity whose document holds the answer): the
  country a person was born in, where an organisation's founder was born, the headquarters
  of a person's employer, the founder of a person's employer.

Splits are by subject: a question's split is fixed by a hash of its subject's name, so a
held-out question is about an entity no training question asks about. Must not know about
retrievers, rewards or tokens. ``python -m agentrl_envs.search_world --out FILE`` writes the
corpus, for serving it with ``agentrl serve retriever``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agentrl.types import Task

# Names are made of consonant-vowel syllables from small sets, so that a tokenizer trained on
# text about the world learns each syllable (and each ending) as one token: a name is a few
# tokens, which a small model can learn to copy from a passage into its answer.
_ONSETS = "b d f g k l m n p r s t v z".split()  # noqa: SIM905
_VOWELS = ["a", "e", "i", "o", "u"]
_CITY_ENDS = ["port", "ton", "vale", "burg"]
_COUNTRY_ENDS = ["ia", "land"]
_ORG_KINDS = ["Guild", "Institute", "Company", "Society", "Bank", "Press", "Foundry", "Trading House"]
_OCCUPATIONS = "painter sailor weaver clockmaker chemist poet surveyor glassblower banker architect".split()  # noqa: SIM905
_INDUSTRIES = ["shipping", "printing", "brewing", "mining", "weaving", "insurance", "research", "glassmaking"]
SPLIT_SHARES = {"train": 0.8, "test": 0.2}
VERSION = 2  # bump when the generator changes, so cached corpora are rewritten


@dataclass(frozen=True)
class WorldSize:
    people: int = 1500
    cities: int = 300
    countries: int = 30
    organisations: int = 300


@dataclass(frozen=True)
class Person:
    born_in: str  # a city
    year: int
    occupation: str
    employer: str  # an organisation


@dataclass(frozen=True)
class Organisation:
    founder: str  # a person
    hq: str  # a city
    year: int
    industry: str


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answer: str
    subject: str
    hops: tuple[str, ...]  # the entity each search should look up, in order


class World:
    """The entities of one seed, their documents and their questions."""

    def __init__(self, seed: int = 0, size: WorldSize = WorldSize()):
        self.seed, self.size = seed, size
        rng = random.Random(f"search_world/{seed}")
        names = _Names(rng)
        self.countries = [names.make(2, _COUNTRY_ENDS) for _ in range(size.countries)]
        self.cities = [names.make(2, _CITY_ENDS) for _ in range(size.cities)]
        self.people = [f"{names.make(2, unique=False)} {names.make(2)}" for _ in range(size.people)]
        self.organisations = [f"{names.make(2)} {rng.choice(_ORG_KINDS)}" for _ in range(size.organisations)]
        self.city_country = {c: rng.choice(self.countries) for c in self.cities}
        self.capital = {
            k: rng.choice([c for c in self.cities if self.city_country[c] == k] or self.cities) for k in self.countries
        }
        self.org = {
            o: Organisation(
                founder=rng.choice(self.people),
                hq=rng.choice(self.cities),
                year=rng.randint(1700, 1950),
                industry=rng.choice(_INDUSTRIES),
            )
            for o in self.organisations
        }
        self.person = {
            p: Person(
                born_in=rng.choice(self.cities),
                year=rng.randint(1650, 1950),
                occupation=rng.choice(_OCCUPATIONS),
                employer=rng.choice(self.organisations),
            )
            for p in self.people
        }

    def documents(self) -> Iterator[dict[str, str]]:
        """Search-R1 corpus rows ``{"id", "contents"}``: the title line, then the text."""
        for name, p in self.person.items():
            text = f"{name} is a {p.occupation} born in {p.born_in} in {p.year}. {name} works for the {p.employer}."
            yield _doc(name, text)
        for name, country in self.city_country.items():
            yield _doc(name, f"{name} is a city in {country}.")
        for name, capital in self.capital.items():
            yield _doc(name, f"{name} is a country. Its capital is {capital}.")
        for name, o in self.org.items():
            text = (
                f"The {name} is a {o.industry} firm founded by {o.founder} in {o.year}. "
                f"The headquarters of the {name} are in {o.hq}."
            )
            yield _doc(name, text)

    def questions(self) -> Iterator[Question]:
        """Every question the world has, single hop first, in a fixed order."""
        for name, p in self.person.items():
            employer = self.org[p.employer]
            yield _q(name, f"Where was {name} born?", p.born_in)
            yield _q(name, f"In which year was {name} born?", str(p.year))
            yield _q(name, f"Which organisation does {name} work for?", p.employer)
            yield _q(name, f"In which country was {name} born?", self.city_country[p.born_in], p.born_in)
            yield _q(name, f"Where are the headquarters of {name}'s employer?", employer.hq, p.employer)
            yield _q(name, f"Who founded the organisation {name} works for?", employer.founder, p.employer)
        for name, country in self.city_country.items():
            yield _q(name, f"In which country is {name}?", country)
        for name, capital in self.capital.items():
            yield _q(name, f"What is the capital of {name}?", capital)
        for name, o in self.org.items():
            yield _q(name, f"Who founded the {name}?", o.founder)
            yield _q(name, f"Where are the headquarters of the {name}?", o.hq)
            yield _q(name, f"Where was the founder of the {name} born?", self.person[o.founder].born_in, o.founder)

    def tasks(self, split: str, num_tasks: int, two_hop_share: float) -> list[Task]:
        """``num_tasks`` questions of ``split`` (fewer if the split has fewer), a
        ``two_hop_share`` of them two-hop, drawn by a seeded shuffle."""
        pool = [q for q in self.questions() if split_of(q.subject, self.seed) == split]
        rng = random.Random(f"search_world/{self.seed}/{split}")
        rng.shuffle(pool)
        two = [q for q in pool if len(q.hops) == 2]
        one = [q for q in pool if len(q.hops) == 1]
        n_two = min(len(two), round(num_tasks * two_hop_share))
        chosen = one[: num_tasks - n_two] + two[:n_two]
        rng.shuffle(chosen)
        return [
            Task(id=q.id, prompt=q.question, answer=json.dumps([q.answer]), meta={"hops": list(q.hops)}) for q in chosen
        ]


def split_of(subject: str, seed: int) -> str:
    """The split of every question about ``subject``: fixed by a hash, ``SPLIT_SHARES`` of them."""
    digest = hashlib.sha256(f"{seed}/{subject}".encode()).digest()
    return "train" if int.from_bytes(digest[:4], "big") / 2**32 < SPLIT_SHARES["train"] else "test"


@functools.cache
def world(seed: int, size: WorldSize = WorldSize()) -> World:
    return World(seed, size)


def write_corpus(path: Path, seed: int = 0, size: WorldSize = WorldSize()) -> Path:
    """Write the world's corpus as JSONL to ``path`` (atomically: a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{random.getrandbits(32):08x}.tmp")
    tmp.write_text("".join(json.dumps(d) + "\n" for d in world(seed, size).documents()), encoding="utf-8")
    tmp.replace(path)
    return path


class _Names:
    """Unique capitalised names from syllables."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def make(self, syllables: int, endings: list[str] | None = None, *, unique: bool = True) -> str:
        while True:
            word = "".join(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) for _ in range(syllables))
            if endings:
                word += self.rng.choice(endings)
            word = word.capitalize()
            if not unique:
                return word
            if word not in self.used:
                self.used.add(word)
                return word


def _doc(title: str, text: str) -> dict[str, str]:
    return {"id": title.lower().replace(" ", "_"), "contents": f"{title}\n{text}"}


def _q(subject: str, question: str, answer: str, via: str | None = None) -> Question:
    qid = hashlib.sha256(question.encode()).hexdigest()[:12]
    return Question(f"world-{qid}", question, answer, subject, (subject,) if via is None else (subject, via))


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the search_qa world's corpus as JSONL.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_corpus(args.out, args.seed)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
