;; TEST ONLY. An intermediary the owner might be tricked into calling.
;; When the owner calls these, tx-sender is the owner but contract-caller is
;; this contract, so the escrow must refuse (ERR-NOT-OWNER, u100).
(define-public (pause-escrow)
  (contract-call? .x402-nexus-escrow pause)
)

(define-public (unpause-escrow)
  (contract-call? .x402-nexus-escrow unpause)
)

(define-public (propose-owner-escrow (new-owner principal))
  (contract-call? .x402-nexus-escrow propose-owner new-owner)
)

;; Lets a test make this contract the proposed owner and accept, showing that
;; accept-owner also keys on contract-caller.
(define-public (accept-owner-escrow)
  (contract-call? .x402-nexus-escrow accept-owner)
)
