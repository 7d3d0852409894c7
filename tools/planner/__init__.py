"""ComfyGen-FT planner: LoRA on the bundled MiniLM with a head over the flow vocabulary.

``Planner.load(dir=None)`` (bundled when None) -> ``.predict(prompt, k=5, target_score=None)`` ->
``[Prediction(flow_id, score, advantage, normalized)]``. Training: ``train_planner(table, out, cfg)``;
evaluation: ``evaluate_planner(planner, table)``.
"""

from .data import TripletTable, load_triplets, table_from_rows
from .evaluate import EvalReport, evaluate_planner
from .planner import Planner, Prediction, bundled_dir, choose
from .train import PlannerTrainConfig, train_planner

__all__ = ["Planner", "Prediction", "bundled_dir", "choose", "TripletTable", "load_triplets", "table_from_rows",
           "EvalReport", "evaluate_planner", "PlannerTrainConfig", "train_planner"]
