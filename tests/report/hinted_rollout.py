"""A rollout played through the real episode with augmented feedback, whose first call fails and gets
a hint: the random tiny model of the tests never makes a call, so its rollouts show no hint."""

from envtune.env import Episode, EpisodeConfig
from envtune.env.oracle import calls_reply, oracle_reply
from envtune.rollout import ChatDriver, Rollout

WRONG_CD = "cd(folder='nowhere')"  # the file system answers with an error, augmented feedback adds a hint
HINT_KIND = "file_system.not_in_current_directory"


def played_rollout(task, first_call: str = WRONG_CD) -> Rollout:
    """`first_call`, then the ground truth of every turn (multi_turn_base_0: every turn passes)."""
    driver = ChatDriver(Episode(task, EpisodeConfig(feedback="augmented")))
    driver.reply({"role": "assistant", "content": calls_reply(driver.episode, [first_call])})
    driver.reply({"role": "assistant", "content": calls_reply(driver.episode, task.ground_truth[0])})
    while not driver.done:
        driver.reply({"role": "assistant", "content": oracle_reply(driver.episode)})
    record = driver.record()
    return Rollout(task.id, [], [], [], None, driver.messages, record, record.reward("progress"), tuple(driver.turn_starts))
