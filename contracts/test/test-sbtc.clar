;; A devnet stand-in for sBTC: a plain SIP-010 token (8 decimals) that the
;; x402 tests pay with. Its name contains "sbtc" because x402-stacks' client
;; picks the token kind by contract name. Test only: never deployed outside
;; devnet. Anyone may mint, so tests can fund payers.
(impl-trait .sip-010-trait.sip-010-trait)

(define-fungible-token test-sbtc)

(define-constant ERR-NOT-SENDER (err u4))

(define-public (transfer (amount uint) (sender principal) (recipient principal) (memo (optional (buff 34))))
  (begin
    ;; As sBTC: only the owner moves its tokens.
    (asserts! (is-eq tx-sender sender) ERR-NOT-SENDER)
    (try! (ft-transfer? test-sbtc amount sender recipient))
    (match memo m (begin (print m) true) true)
    (ok true)))

(define-public (mint (amount uint) (recipient principal))
  (ft-mint? test-sbtc amount recipient))

(define-read-only (get-name) (ok "Test sBTC"))
(define-read-only (get-symbol) (ok "tsBTC"))
(define-read-only (get-decimals) (ok u8))
(define-read-only (get-balance (who principal)) (ok (ft-get-balance test-sbtc who)))
(define-read-only (get-total-supply) (ok (ft-get-supply test-sbtc)))
(define-read-only (get-token-uri) (ok none))
