"""FAQ retrieval: corpus loading, hybrid Korean-aware search with calibrated confidence, evaluation."""

from retrieval.search import FaqSearcher, SearchHit, SearchResponse

__all__ = ["FaqSearcher", "SearchHit", "SearchResponse"]
