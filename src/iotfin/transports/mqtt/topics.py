"""MQTT topic names, topic filters and matching (MQTT 3.1.1 §4.7, MQTT 5 §4.7)."""

from __future__ import annotations


def is_valid_topic_name(topic: str) -> bool:
    """A topic a PUBLISH may carry: not empty, no wildcards."""
    return bool(topic) and "+" not in topic and "#" not in topic


def is_valid_topic_filter(topic_filter: str) -> bool:
    """Not empty; `+` fills a whole level; `#` fills the last level."""
    if not topic_filter:
        return False
    if "+" not in topic_filter and "#" not in topic_filter:
        return True
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for i, level in enumerate(levels):
        if ("+" in level or "#" in level) and len(level) != 1:
            return False
        if level == "#" and i != last:
            return False
    return True


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether a valid filter matches a topic name; wildcards never match a leading `$` level."""
    if topic_filter == topic:
        return True
    if "+" not in topic_filter and "#" not in topic_filter:
        return False
    if topic.startswith("$") and topic_filter[0] in "+#":
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True  # also matches the parent: "a/#" matches "a"
        if i >= len(topic_levels) or (level != "+" and level != topic_levels[i]):
            return False
    return len(filter_levels) == len(topic_levels)
