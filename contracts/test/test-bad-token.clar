;; A SIP-010 token whose transfer can lie, to show what the escrow's own
;; checks catch and what only its allowlist can. Test only: never deployed
;; outside devnet. Anyone may mint and set the mode.
;;   mode u0: honest;
;;   mode u1: transfer answers (ok true) and moves nothing;
;;   mode u2: transfer moves half the amount and answers (ok true).
;; get-balance always tells the truth.
(impl-trait .sip-010-trait.sip-010-trait)

(define-fungible-token bad-token)

(define-data-var mode uint u0)

(define-public (set-mode (new-mode uint))
  (ok (var-set mode new-mode)))

(define-public (transfer (amount uint) (sender principal) (recipient principal) (memo (optional (buff 34))))
  (begin
    (asserts! (is-eq tx-sender sender) (err u4))
    (if (is-eq (var-get mode) u1)
      (ok true)
      (begin
        (try! (ft-transfer? bad-token
          (if (is-eq (var-get mode) u2) (/ amount u2) amount)
          sender recipient))
        (ok true)))))

(define-public (mint (amount uint) (recipient principal))
  (ft-mint? bad-token amount recipient))

(define-read-only (get-name) (ok "Bad Token"))
(define-read-only (get-symbol) (ok "BAD"))
(define-read-only (get-decimals) (ok u6))
(define-read-only (get-balance (who principal)) (ok (ft-get-balance bad-token who)))
(define-read-only (get-total-supply) (ok (ft-get-supply bad-token)))
(define-read-only (get-token-uri) (ok none))
