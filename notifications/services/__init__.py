"""Every write to notifications goes through these services: customer messages
(`messages`) and outbound webhooks (`webhooks`)."""
