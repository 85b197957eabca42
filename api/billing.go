package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
)

type checkoutRequest struct {
	SuccessURL string `json:"successUrl,omitempty"`
	CancelURL  string `json:"cancelUrl,omitempty"`
}

var errBillingOff = &domain.Error{Kind: domain.KindNotFound, Code: "billing_disabled", Message: "Billing is not enabled on this platform."}

func (s *Server) registerBilling() {
	s.route(routeDoc{Method: "GET", Path: "/api/v1/teams/:teamId/billing", Summary: "The team's subscription: status, trial, billed lines and Stripe items, next invoice date (owners).", Tag: "billing"}, s.getTeamBilling)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/teams/:teamId/billing/checkout", Summary: "Start a Stripe Checkout session to subscribe the team (owners); answers its URL.", Tag: "billing", Body: checkoutRequest{}, Status: 201}, s.startCheckout)
	s.route(routeDoc{Method: "POST", Path: "/api/v1/billing/stripe-webhook", Summary: "Stripe's webhook: signed events only (a bad or missing signature answers 400 and does nothing).", Tag: "billing", Public: true}, s.stripeWebhook)
}

func (s *Server) getTeamBilling(c *fiber.Ctx) error {
	_, team, _, err := s.teamFor(c, domain.ActionTeamBillingRead)
	if err != nil {
		return err
	}
	if s.billing == nil {
		return c.JSON(fiber.Map{"enabled": false, "billed": false, "status": "not_billed", "lines": []any{}, "items": []any{}})
	}
	v, err := s.billing.TeamView(c.UserContext(), team.ID)
	if err != nil {
		return err
	}
	return c.JSON(v)
}

func (s *Server) startCheckout(c *fiber.Ctx) error {
	who, team, _, err := s.teamFor(c, domain.ActionTeamBillingManage)
	if err != nil {
		return err
	}
	var req checkoutRequest
	if len(c.Body()) > 0 {
		if err := s.decode(c, &req); err != nil {
			return err
		}
	}
	if s.billing == nil {
		return errBillingOff
	}
	sess, err := s.billing.Checkout(c.UserContext(), team.ID, who.user.Email, req.SuccessURL, req.CancelURL)
	if err != nil {
		return err
	}
	return created(c, sess)
}

// stripeWebhook applies one Stripe event. The body is read raw: the signature covers its exact bytes.
func (s *Server) stripeWebhook(c *fiber.Ctx) error {
	if s.billing == nil {
		return errBillingOff
	}
	res, err := s.billing.HandleWebhook(c.UserContext(), c.Body(), c.Get("Stripe-Signature"))
	if err != nil {
		return err
	}
	return c.JSON(res)
}
