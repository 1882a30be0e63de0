"""Supply-chain receivables: digital debt vouchers (数字债权凭证) as fen ranges of their issue — issued, split, transferred, financed and paid (issue 20)."""
